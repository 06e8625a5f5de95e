"""Shared fixtures: a tiny real data set made from the photographs inside scikit-image."""

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from srbench.data import prepare  # noqa: E402
from srbench.download.local import export_samples  # noqa: E402


@pytest.fixture(autouse=True)
def mlflow_tracking_uri_stays_in_its_test() -> Iterator[None]:
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, which the stages honour: a test that
    reads a store must not send later tests' stages into it."""
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if saved is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = saved


@pytest.fixture
def srbench_here(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Callable[..., tuple[int, str]]:
    """``srbench_here(*args)`` runs the `srbench` entry point in this process (a subprocess takes
    seconds to import torch) and returns its exit status and stderr."""
    from pipeline import cli

    monkeypatch.setattr(cli, "setup_logging", lambda: None)
    monkeypatch.setattr(cli, "stop_on_sigterm", lambda: None)

    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["srbench", *args])
        with pytest.raises(SystemExit) as exited:
            cli.main()
        return exited.value.code, capsys.readouterr().err

    return run


@pytest.fixture(scope="session")
def raw_samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/raw made of the packaged sample photographs, centre-cropped to 64 px; the retina (easy
    for bicubic) and a motorcycle held out."""
    raw = tmp_path_factory.mktemp("data") / "raw"
    export_samples(raw, n_valid=2, seed=0, max_side=64, valid_names=["retina", "motorcycle_left"])
    return raw


@pytest.fixture(scope="session")
def prepared_x2(raw_samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/prepared at x2 with 32-px patches."""
    out = tmp_path_factory.mktemp("prepared") / "prepared"
    prepare(raw_samples, out, scale=2, patch_size=32, stride=16, workers=1)
    return out


def _mount(target: Path, *options: str) -> None:
    """Mount a tmpfs at ``target``, or skip the test where this machine does not allow it."""
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()})")


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real file system of 64 KiB, already full: every write into it fails with ENOSPC."""
    target = tmp_path / "full"
    target.mkdir()
    _mount(target, "size=64k")
    _fill(target)
    yield target
    subprocess.run(["umount", "-l", str(target)], check=False)


def _fill(target: Path) -> None:
    with contextlib.suppress(OSError), open(target / "filler", "wb") as file:
        while True:
            file.write(b"\0" * 4096)
            file.flush()


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A real read-only file system (a tmpfs mounted ``ro``): writes fail with EROFS, even as root."""
    target = tmp_path / "read_only"
    target.mkdir()
    _mount(target, "size=1m", "ro")
    yield target
    subprocess.run(["umount", "-l", str(target)], check=False)
