"""`srbench train` never lies and never leaves a half-done state: it resumes only its own
checkpoint, refuses a second training of the same model, stops a diverging run without touching
the model, checks its output places first, and ends its MLflow run KILLED on SIGTERM."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.process import workspace_lock

REPO = Path(__file__).resolve().parents[1]
SRBENCH = str(Path(sys.executable).parent / "srbench")


def write_params(workdir: Path, steps: int, lr: float = 1e-3) -> None:
    """A tiny SRCNN that checkpoints every 2 steps."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"] |= {"log_every": 2, "validations": 1, "checkpoint_every": 2}
    params["srcnn"] |= {"steps": steps, "batch_size": 8, "patch_size": 16, "optimizer": {"name": "adam", "lr": lr}}
    params["srcnn"]["arch"] |= {"n1": 8, "n2": 4, "f1": 3, "f2": 1, "f3": 3}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


def command(prepared: Path, *extra: str) -> list[str]:
    return [SRBENCH, "train", "srcnn", "--data", str(prepared), *extra]


def train(workdir: Path, prepared: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(prepared, *extra), cwd=workdir, capture_output=True, text=True, timeout=300)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("srbench: error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def run_statuses(workdir: Path) -> list[str]:
    """The status of every MLflow run of the workspace, oldest first (read from its SQLite store)."""
    with sqlite3.connect(workdir / "mlruns" / "mlflow.db") as db:
        return [status for (status,) in db.execute("select status from runs order by start_time")]


def leftovers(workdir: Path) -> list[str]:
    return sorted(str(path.relative_to(workdir)) for path in workdir.rglob("*.tmp"))


def test_resume_continues_only_its_own_run_and_sigterm_ends_it_killed(prepared_x2: Path, tmp_path: Path, monkeypatch) -> None:
    write_params(tmp_path, steps=600)

    # a second training of the model in the same workspace is refused while the first holds it
    monkeypatch.chdir(tmp_path)
    with workspace_lock("train-srcnn-seed0", "srbench train srcnn --seed 0"):
        refused = train(tmp_path, prepared_x2)
    error = one_error_line(refused)
    assert f".srbench/locks/train-srcnn-seed0.lock: srbench train srcnn --seed 0 (pid {os.getpid()}) is already running in this workspace" in error
    assert not (tmp_path / "checkpoints/seed0/srcnn.pt").exists()

    # SIGTERM mid-run: exit 143, the MLflow run KILLED, no model, no temporary file
    process = subprocess.Popen(command(prepared_x2), cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "checkpoints/seed0/srcnn.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 143 and "srbench: stopped by SIGTERM" in stderr, stderr[-3000:]
    assert run_statuses(tmp_path) == ["KILLED"]
    assert not (tmp_path / "models/seed0/srcnn.pt").exists() and leftovers(tmp_path) == []

    # other params: --resume refuses the checkpoint and names what changed, before any run starts
    write_params(tmp_path, steps=300, lr=1e-4)
    error = one_error_line(train(tmp_path, prepared_x2, "--resume"))
    assert "checkpoints/seed0/srcnn.pt: made by another run (" in error
    assert "settings.optimizer.lr: 0.001 -> 0.0001" in error and "settings.steps: 600 -> 300" in error
    assert run_statuses(tmp_path) == ["KILLED"]

    # the same params: it resumes, finishes and leaves no checkpoint behind
    write_params(tmp_path, steps=600)
    finished = train(tmp_path, prepared_x2, "--resume")
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "resumed from checkpoints/seed0/srcnn.pt at step" in finished.stderr
    assert (tmp_path / "models/seed0/srcnn.pt").is_file() and not (tmp_path / "checkpoints/seed0/srcnn.pt").exists()
    assert run_statuses(tmp_path) == ["KILLED", "FINISHED"] and leftovers(tmp_path) == []


def test_a_diverging_run_fails_and_keeps_the_previous_model(prepared_x2: Path, tmp_path: Path) -> None:
    write_params(tmp_path, steps=20, lr=1e3)  # Adam at 1e3: a finite loss ~1e30
    (tmp_path / "models/seed0").mkdir(parents=True)
    (tmp_path / "models/seed0/srcnn.pt").write_bytes(b"the previous model")
    error = one_error_line(train(tmp_path, prepared_x2))
    assert "training diverged by step" in error and "the first batch's" in error
    assert (tmp_path / "models/seed0/srcnn.pt").read_bytes() == b"the previous model"
    assert run_statuses(tmp_path) == ["FAILED"]
    assert not (tmp_path / "metrics/train/seed0/srcnn.json").exists()


@pytest.mark.parametrize(
    "place, problem",
    [("models", "Read-only file system"), ("mlruns/artifacts", "Read-only file system"), ("checkpoints", "No space left on device")],
)
def test_an_unwritable_output_place_is_found_before_training(
    prepared_x2: Path, tmp_path: Path, place: str, problem: str, request: pytest.FixtureRequest
) -> None:
    target = request.getfixturevalue("read_only_dir" if problem.startswith("Read-only") else "full_disk")
    workdir = tmp_path / "workspace"
    (workdir / place).parent.mkdir(parents=True)
    write_params(workdir, steps=20)
    os.symlink(target, workdir / place)
    result = train(workdir, prepared_x2)
    error = one_error_line(result)
    folder = place if place == "mlruns/artifacts" else f"{place}/seed0"  # the seed's own folder, under the unwritable place
    assert error.startswith("srbench: error: ") and error.endswith(f"{folder}: cannot write here ({problem})")
    assert "step 2/20" not in result.stderr and not (workdir / "mlruns" / "mlflow.db").exists()
