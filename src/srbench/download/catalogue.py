"""The published catalogues: DIV2K (HR and bicubic LR archives, :func:`download_div2k`) and
EDSR's benchmark sets (:func:`download_benchmark`), their mirrors, archives, checksums and scales,
and how their images are laid out under ``out_dir``."""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from srbench.download.archives import safe_extract
from srbench.download.transfer import TransferLimits, _algorithm, fetch
from srbench.errors import SrbenchError
from srbench.files import staged_folder
from srbench.names import BENCHMARK_SETS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Archive:
    """A published archive: file name, MD5 or SHA-256 hex digest, and size in bytes if known."""

    name: str
    checksum: str
    size: int | None

    def __post_init__(self) -> None:
        _algorithm(self.checksum, self.name)


DIV2K_MIRROR = "https://data.vision.ee.ethz.ch/cvl/DIV2K"

DIV2K_ARCHIVES: dict[str, Archive] = {
    archive.name: archive
    for archive in (
        Archive(
            "DIV2K_train_HR.zip",
            "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335",
            3530603713,
        ),
        Archive(
            "DIV2K_valid_HR.zip",
            "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",
            448993893,
        ),
        Archive(
            "DIV2K_train_LR_bicubic_X2.zip",
            "a53a424317575838dadce4bcd97cf7b744d6855f43740ed5f0245af3cf4bd850",
            None,
        ),
        Archive(
            "DIV2K_train_LR_bicubic_X3.zip",
            "ad5c8e5507e2765823d3c2c5bd0934842efcd487c5370604c224090898b3163a",
            None,
        ),
        Archive(
            "DIV2K_train_LR_bicubic_X4.zip",
            "f006b837f4eb52b82909aa01478e6d6d199eefce932179491d0c9dbb706dde3a",
            None,
        ),
        Archive(
            "DIV2K_valid_LR_bicubic_X2.zip",
            "60eed9875c697df51204aa579e2a699e1d5215095788a097ff54dd17e2664d57",
            None,
        ),
        Archive(
            "DIV2K_valid_LR_bicubic_X3.zip",
            "04b9a2ed3b4a0715d3924d3ae8514830c3328fac8d30512ce716d6f419e052a3",
            None,
        ),
        Archive(
            "DIV2K_valid_LR_bicubic_X4.zip",
            "a50a5d1c4b88de4e8d300d8fb2b904c52fe93b2b298a4899697760d7cbb6d553",
            None,
        ),
    )
}

SPLITS = ("train", "valid")

BENCHMARK_MIRROR = "https://cv.snu.ac.kr/research/EDSR"

BENCHMARK_ARCHIVES: dict[str, Archive] = {
    "benchmark.tar": Archive("benchmark.tar", "4ace41d33c2384b97e6b320cd0afd6ba", None),
}

BENCHMARK_SCALES = (2, 3, 4)


def with_checksums(archives: dict[str, Archive], overrides: dict[str, str]) -> dict[str, Archive]:
    """A copy of ``archives`` with the checksums of ``overrides`` ({name: hex}), e.g. for a mirror.

    Overridden archives lose their size (a mirror may repack them); unknown names are added.
    """
    merged = dict(archives)
    for name, checksum in overrides.items():
        merged[name] = Archive(name, checksum, None)
    return merged


def _known_scales(archives: dict[str, Archive]) -> list[int]:
    found = (re.fullmatch(r"DIV2K_train_LR_bicubic_X(\d+)\.zip", name) for name in archives)
    return sorted(int(m.group(1)) for m in found if m)


def _fetch_archives(
    names: Iterable[str],
    archives: dict[str, Archive],
    mirror: str,
    cache_dir: Path,
    limits: TransferLimits,
) -> list[Path]:
    """Fetch the named archives from ``mirror`` into ``cache_dir``, checked against ``archives``."""
    base = mirror.rstrip("/")
    cache_dir.mkdir(parents=True, exist_ok=True)
    return [
        fetch(f"{base}/{name}", cache_dir / name, archives[name].checksum, archives[name].size, limits)
        for name in names
    ]


@contextlib.contextmanager
def _extracted(paths: Iterable[Path], parent: Path) -> Iterator[Path]:
    """Yield a temporary directory in ``parent`` holding the contents of archives ``paths``."""
    extract_dir = Path(tempfile.mkdtemp(prefix=".extract-", dir=parent))
    try:
        for path in paths:
            safe_extract(path, extract_dir)
        yield extract_dir
    finally:
        shutil.rmtree(extract_dir, ignore_errors=True)


def _move_pairs(
    hr_dir: Path, lr_dir: Path, out: Path, scale: int, limit: int | None, origin: str
) -> None:
    """Move HR/LR pairs into ``out``, the LR image renamed to its HR image's name.

    ``hr_dir/<name>.png`` goes to ``out/HR/<name>.png`` and its partner
    ``lr_dir/<name>x<scale>.png`` to ``out/LR_bicubic/X<scale>/<name>.png``; ``limit`` keeps the
    first N HR images. ``origin`` names the images in messages.
    """
    hr_files = sorted(hr_dir.glob("*.png"))
    if not hr_files:
        raise SrbenchError(f"{hr_dir}: no HR PNG images for {origin}")
    if limit is not None:
        hr_files = hr_files[:limit]
    hr_out = out / "HR"
    lr_out = out / "LR_bicubic" / f"X{scale}"
    hr_out.mkdir(parents=True)
    lr_out.mkdir(parents=True)
    for hr in hr_files:
        lr = lr_dir / f"{hr.stem}x{scale}.png"
        if not lr.is_file():
            raise SrbenchError(f"{hr.name}: no LR partner {lr.name} for {origin} x{scale}")
        shutil.move(hr, hr_out / hr.name)
        shutil.move(lr, lr_out / hr.name)
    logger.info("%s: %d HR/LR pairs (x%d)", origin, len(hr_files), scale)


def download_div2k(
    out_dir: Path,
    scale: int,
    cache_dir: Path,
    mirror: str = DIV2K_MIRROR,
    archives: dict[str, Archive] = DIV2K_ARCHIVES,
    limit: int | None = None,
    limits: TransferLimits = TransferLimits(),
) -> None:
    """Fetch the DIV2K HR and bicubic x``scale`` LR archives and lay them out under ``out_dir``.

    Archives are cached in ``cache_dir`` and extracted next to ``out_dir``; ``limit`` keeps the
    first N images of each split; ``limits`` bounds each transfer.
    """
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    if limit is not None and limit < 1:
        raise SrbenchError(f"limit={limit}: must be at least 1")
    needed = {
        split: (f"DIV2K_{split}_HR.zip", f"DIV2K_{split}_LR_bicubic_X{scale}.zip")
        for split in SPLITS
    }
    for hr_name, lr_name in needed.values():
        if lr_name not in archives:
            raise SrbenchError(
                f"scale {scale}: no DIV2K bicubic LR archive "
                f"(known scales: {_known_scales(archives)})"
            )
        if hr_name not in archives:
            raise SrbenchError(f"no checksum known for DIV2K archive {hr_name}")
    names = [name for pair in needed.values() for name in pair]
    files = _fetch_archives(names, archives, mirror, cache_dir, limits)
    with staged_folder(out_dir) as stage, _extracted(files, stage) as extract_dir:
        for split in SPLITS:
            _move_pairs(
                extract_dir / f"DIV2K_{split}_HR",
                extract_dir / f"DIV2K_{split}_LR_bicubic" / f"X{scale}",
                stage / split,
                scale,
                limit,
                f"DIV2K {split}",
            )


def download_benchmark(
    out_dir: Path,
    sets: Sequence[str],
    scale: int,
    cache_dir: Path,
    mirror: str = BENCHMARK_MIRROR,
    archives: dict[str, Archive] = BENCHMARK_ARCHIVES,
    limits: TransferLimits = TransferLimits(),
) -> None:
    """Fetch EDSR's benchmark archive and lay out the x``scale`` pairs of ``sets`` in ``out_dir``.

    Writes ``<Set>/HR/<name>.png`` and ``<Set>/LR_bicubic/X<scale>/<name>.png`` for each
    requested set only; the archive is cached in ``cache_dir``; ``limits`` bounds the transfer.
    """
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    wanted = [sets] if isinstance(sets, str) else list(dict.fromkeys(sets))
    choices = ", ".join(BENCHMARK_SETS)
    if not wanted:
        raise SrbenchError(f"no benchmark set given (choices: {choices})")
    for name in wanted:
        if name not in BENCHMARK_SETS:
            raise SrbenchError(f"benchmark set {name!r}: unknown (choices: {choices})")
    if scale not in BENCHMARK_SCALES:
        raise SrbenchError(
            f"scale {scale}: the benchmark sets have bicubic LR images for "
            f"x{', x'.join(map(str, BENCHMARK_SCALES))} only"
        )
    if "benchmark.tar" not in archives:
        raise SrbenchError("no checksum known for benchmark.tar")
    files = _fetch_archives(["benchmark.tar"], archives, mirror, cache_dir, limits)
    with staged_folder(out_dir) as stage, _extracted(files, stage) as extract_dir:
        for name in wanted:
            set_dir = extract_dir / "benchmark" / name
            if not set_dir.is_dir():
                raise SrbenchError(f"benchmark set {name}: not found in {files[0]}")
            hr_dir, lr_dir = set_dir / "HR", set_dir / "LR_bicubic" / f"X{scale}"
            _move_pairs(hr_dir, lr_dir, stage / name, scale, None, f"benchmark {name}")
