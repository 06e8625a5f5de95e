"""The "download" stage: fetch DIV2K (or use bundled / local images) into a raw data directory.

Layout written under ``out_dir``::

    train/HR/<name>.png
    valid/HR/<name>.png
    train/LR_bicubic/X<scale>/<name>.png   (DIV2K only: the official bicubic LR images)
    valid/LR_bicubic/X<scale>/<name>.png

:func:`download_benchmark` writes the EDSR benchmark test sets the same way, one folder per
set: ``<Set>/HR/<name>.png`` and ``<Set>/LR_bicubic/X<scale>/<name>.png``.

Everything is first written to a temporary directory next to ``out_dir`` and renamed into
place at the end (:func:`staged_output`), so a failure never leaves a half-written ``out_dir``.

Transfers resume from a ``.part`` file, with or without a Content-Length from the server (a cut
transfer of unknown length is told apart from a complete one by the checksum, then by asking for
the bytes past its end). :class:`TransferLimits` bounds them: a per-read timeout, a minimum
average rate over a sliding window (a trickling connection is dropped and resumed, like a cut
one) and an overall deadline per archive; the ``.part`` file always stays for a later run.

A damaged archive that passed its checksum (so the checksum itself describes the damaged file)
is reported in one line naming it; it is not deleted, since downloading it again from the same
source would give the same bytes.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import logging
import lzma
import os
import random
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np
from PIL import Image
from skimage import data as skdata

from srbench.errors import DownloadError, SrbenchError, UnsafeArchiveError
from srbench.files import file_digest, naming, staged_folder
from srbench.images import list_images, open_image, to_rgb
from srbench.names import BENCHMARK_SETS
from srbench.progress import progress

logger = logging.getLogger(__name__)


_ALGORITHMS = {32: "md5", 64: "sha256"}
_HEX = re.compile(r"[0-9a-fA-F]+")


def _algorithm(checksum: str, owner: str) -> str:
    """The hash algorithm of a hex digest, told by its length (MD5: 32 digits, SHA-256: 64)."""
    algorithm = _ALGORITHMS.get(len(checksum))
    if algorithm is None or not _HEX.fullmatch(checksum):
        raise SrbenchError(
            f"{owner}: checksum {checksum!r} is neither an MD5 (32 hex digits) "
            "nor a SHA-256 (64 hex digits)"
        )
    return algorithm


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

_CHUNK = 1 << 20
_KIB = 1 << 10
_ATTEMPTS = 3
_RETRY_DELAY_S = 2.0
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")
_CHECKSUM_LINE = re.compile(r"([0-9a-fA-F]{64}|[0-9a-fA-F]{32}) [ *](\S.*)")


def _stereo_motorcycle(index: int) -> Callable[[], np.ndarray]:
    return lambda: skdata.stereo_motorcycle()[index]


def _packaged_photograph(package: str, relative: str) -> Callable[[], np.ndarray]:
    """A loader of the photograph ``relative`` inside the installed ``package`` (found without
    importing it); a missing package or file is one line naming both."""

    def load() -> np.ndarray:
        spec = importlib.util.find_spec(package)
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        path = Path(folders[0]) / relative if folders else None
        if path is None or not path.is_file():
            raise SrbenchError(f"data.source samples: {package}'s sample photograph {relative} not found (is {package} installed?)")
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    return load


# Every real colour photograph that the installed packages ship, so that the default data set is
# offline: scikit-image's (no pooch download needed), matplotlib's sample data and scikit-learn's
# (installed with MLflow). Synthetic images (colorwheel, logo, matplotlib's gift-box render),
# aliases (cat), grayscale images and image stacks are left out.
SAMPLE_IMAGES: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skdata.astronaut,
    "chelsea": skdata.chelsea,
    "coffee": skdata.coffee,
    "hubble_deep_field": skdata.hubble_deep_field,
    "immunohistochemistry": skdata.immunohistochemistry,
    "motorcycle_left": _stereo_motorcycle(0),
    "motorcycle_right": _stereo_motorcycle(1),
    "retina": skdata.retina,
    "rocket": skdata.rocket,
    "grace_hopper": _packaged_photograph("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    "china": _packaged_photograph("sklearn", "datasets/images/china.jpg"),
    "flower": _packaged_photograph("sklearn", "datasets/images/flower.jpg"),
}


@dataclass(frozen=True)
class TransferLimits:
    """When a download gives up. ``timeout``: seconds one read may wait; ``min_rate`` (bytes/s,
    0 for none) averaged over the last ``window`` seconds, else the connection is dropped and
    resumed (as many attempts as for a cut one); ``deadline``: seconds one archive may take in
    all, retries included (None for none).

    The defaults suit DIV2K's 3.5 GB training archive on a slow link: 16 KiB/s (128 kbit/s) is
    well below any usable connection yet far above a stalled or trickling one, a minute rides
    out short stalls, and 12 hours lets 3.5 GB through even at 1 Mbit/s (about 8 hours).
    """

    timeout: float = 60.0
    min_rate: float = 16 * _KIB
    window: float = 60.0
    deadline: float | None = 12 * 3600.0


class _Interrupted(Exception):
    """A transfer stopped early; the ``.part`` file is kept so that the next attempt resumes."""


class _OutOfTime(Exception):
    """A download ran past its deadline; it is not retried."""


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


class _Watch:
    """Applies :class:`TransferLimits` to one download: its deadline (from the first attempt)
    and the average rate of the current connection over the last ``window`` seconds."""

    def __init__(self, limits: TransferLimits) -> None:
        self.limits = limits
        self.start = time.monotonic()
        self.samples: deque[tuple[float, int]] = deque()

    def check_deadline(self, done: int) -> None:
        elapsed = time.monotonic() - self.start
        if self.limits.deadline is not None and elapsed > self.limits.deadline:
            raise _OutOfTime(
                f"not complete after {elapsed:.1f} s (deadline {self.limits.deadline:g} s), "
                f"{done} bytes received"
            )

    def begin(self, done: int) -> None:
        """A new connection starts with ``done`` bytes already in the file."""
        self.samples = deque([(time.monotonic(), done)])

    def update(self, done: int) -> None:
        """``done`` bytes are in the file now: raise if past the deadline or too slow."""
        self.check_deadline(done)
        now, window = time.monotonic(), self.limits.window
        if now - self.samples[-1][0] >= window / 20:  # a bounded number of samples per window
            self.samples.append((now, done))
        while len(self.samples) > 1 and self.samples[1][0] <= now - window:
            self.samples.popleft()
        since, then = self.samples[0]
        received = done - then
        if since <= now - window and received < self.limits.min_rate * window:
            raise _Interrupted(
                f"too slow: {received} bytes in the last {now - since:.1f} s, "
                f"under the minimum of {self.limits.min_rate:g} bytes/s"
            )


def _read(response: http.client.HTTPResponse) -> bytes:
    """What one receive brings (so that a trickle still returns control); b"" at the end."""
    try:
        return response.read1(_CHUNK)
    except (OSError, http.client.HTTPException) as exc:
        raise _Interrupted(str(exc) or type(exc).__name__) from exc


def _transfer(url: str, part: Path, timeout: float, watch: _Watch) -> bool:
    """One attempt: download ``url`` into ``part``, resuming from its current size.

    Returns whether the server's lengths show the file complete; False when it gave none, so
    that only the checksum can tell.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            logger.info("%s: nothing past byte %d, treating %s as complete", url, offset, part)
            return True
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except ValueError as exc:  # not a URL urllib can open
        raise DownloadError(f"{url}: {exc}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _Interrupted(str(exc) or type(exc).__name__) from exc
    with response:
        total = None
        if response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != offset:
                part.unlink()
                raise _Interrupted(f"server resumed at the wrong offset (expected byte {offset})")
            mode, done = "ab", offset
            total = int(match.group(2)) if match.group(2) != "*" else None
            logger.info("%s: resuming at byte %d", url, offset)
        else:  # a 200 answer to a range request: the server starts over
            mode, done = "wb", 0
        length = response.headers.get("Content-Length", "")
        if total is None and length.isdigit():
            total = done + int(length)
        watch.begin(done)
        name = part.name.removesuffix(".part")
        with progress(total, f"download {name}", "B", initial=done, log=logger) as bar, naming(part), part.open(mode) as handle:
            while chunk := _read(response):
                handle.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
                watch.update(done)
    if total is None:
        return False
    if done < total:
        raise _Interrupted(f"connection closed after {done} of {total} bytes")
    return True


def fetch(
    url: str,
    dest: Path,
    checksum: str,
    size: int | None = None,
    limits: TransferLimits = TransferLimits(),
) -> Path:
    """Download ``url`` to ``dest`` (resumable, retried, checksum-verified) and return ``dest``.

    ``checksum`` is an MD5 or SHA-256 hex digest (told apart by length). An existing ``dest``
    with the right checksum is reused; a wrong one is downloaded again. A transfer that fails
    (cut, stalled, too slow, past ``limits.deadline``) keeps its ``.part`` file for a later
    resume; a file that cannot be written raises ``OSError`` naming it, without retrying.
    """
    dest = Path(dest)
    algorithm = _algorithm(checksum, dest.name)
    expected = checksum.lower()
    if dest.exists():
        if file_digest(dest, algorithm=algorithm) == expected:
            logger.info("%s: cached", dest)
            return dest
        logger.warning("%s: checksum does not match, downloading it again", dest)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    logger.info("downloading %s -> %s", url, dest)
    watch, actual = _Watch(limits), None

    def kept() -> str:
        return f"; partial file kept at {part} for a later resume" if part.exists() else ""

    for attempt in range(1, _ATTEMPTS + 1):
        try:
            watch.check_deadline(part.stat().st_size if part.exists() else 0)
            if _transfer(url, part, limits.timeout, watch):
                break
            actual = file_digest(part, algorithm=algorithm)
            if actual == expected:
                break
            raise _Interrupted(
                f"the server gave no length, and the {part.stat().st_size} bytes received do "
                f"not match the {algorithm} (yet)"
            )
        except _OutOfTime as exc:
            raise DownloadError(f"{url}: {exc}{kept()}") from exc
        except _Interrupted as exc:
            if attempt == _ATTEMPTS:
                raise DownloadError(
                    f"{url}: transfer failed after {_ATTEMPTS} attempts ({exc}){kept()}"
                ) from exc
            logger.warning("%s: attempt %d/%d failed (%s), retrying", url, attempt, _ATTEMPTS, exc)
            actual = None
            time.sleep(_RETRY_DELAY_S * attempt)
    actual_size = part.stat().st_size
    if size is not None and actual_size != size:
        part.unlink()
        raise DownloadError(
            f"{url}: size mismatch: expected {size} bytes, got {actual_size} (file deleted)"
        )
    actual = actual or file_digest(part, algorithm=algorithm)
    if actual != expected:
        part.unlink()
        raise DownloadError(
            f"{url}: {algorithm} mismatch: expected {expected}, got {actual} (file deleted)"
        )
    os.replace(part, dest)
    logger.info("%s: downloaded and verified (%s)", dest, _mib(actual_size))
    return dest


def read_checksums(path: Path) -> dict[str, str]:
    """Read a ``sha256sum``/``md5sum`` file (``<hex>  <name>`` or ``<hex> *<name>``) as {name: hex}.

    Blank lines and ``#`` comments are skipped.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SrbenchError(f"{path}: cannot read checksum file ({exc})") from exc
    checksums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _CHECKSUM_LINE.fullmatch(line)
        if match is None:
            raise SrbenchError(
                f"{path}:{number}: malformed line {line!r} "
                "(expected '<md5 or sha256 hex>  <name>' or '<hex> *<name>')"
            )
        name, checksum = match.group(2), match.group(1).lower()
        if checksums.get(name, checksum) != checksum:
            raise SrbenchError(f"{path}:{number}: second, different checksum for {name}")
        checksums[name] = checksum
    return checksums


def with_checksums(archives: dict[str, Archive], overrides: dict[str, str]) -> dict[str, Archive]:
    """A copy of ``archives`` with the checksums of ``overrides`` ({name: hex}), e.g. for a mirror.

    Overridden archives lose their size (a mirror may repack them); unknown names are added.
    """
    merged = dict(archives)
    for name, checksum in overrides.items():
        merged[name] = Archive(name, checksum, None)
    return merged


def _check_entry(archive: Path, name: str) -> PurePosixPath:
    """Return the entry's relative path, or raise if it could escape the target directory."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and path.parts[0].endswith(":")):
        raise UnsafeArchiveError(f"{archive}: unsafe entry {name!r} (absolute path or '..')")
    return path


def _damaged(archive: Path, detail: str) -> DownloadError:
    return DownloadError(
        f"{archive}: damaged archive ({detail}); delete it so that it is downloaded again"
    )


@contextlib.contextmanager
def _reading(archive: Path) -> Iterator[None]:
    """Turn what a damaged archive raises while being read (bad CRC, truncated data) into one
    :class:`DownloadError` naming it. An ``OSError`` naming a file (a failed write) passes
    through; a system error without one is given the archive's name."""
    try:
        yield
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise _damaged(archive, str(exc) or type(exc).__name__) from exc
    except OSError as exc:
        if exc.filename is not None:
            raise
        if exc.errno is None:  # a decompressor's complaint (gzip, bz2), not the system's
            raise _damaged(archive, str(exc) or type(exc).__name__) from exc
        raise OSError(exc.errno, exc.strerror, str(archive)) from exc


def _write_member(reader: IO[bytes], dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with reader, naming(dest), dest.open("wb") as writer:
        while chunk := reader.read(_CHUNK):
            writer.write(chunk)


def safe_extract(archive: Path, target: Path) -> list[Path]:
    """Extract a .zip or .tar(.gz) archive into ``target`` and return the extracted files.

    Every entry is checked before anything is written: absolute paths, ``..`` components and
    (for tar) links or device files raise :class:`UnsafeArchiveError`. A damaged archive (bad
    CRC, truncated) raises :class:`DownloadError` naming it, and is left in place; files
    extracted before the damage showed stay in ``target`` (extract into a temporary folder).
    """
    archive, target = Path(archive), Path(target)
    with _reading(archive):
        extracted = _extract(archive, target)
    logger.info("%s: extracted %d files into %s", archive, len(extracted), target)
    return extracted


def _extract(archive: Path, target: Path) -> list[Path]:
    extracted: list[Path] = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = [(info, _check_entry(archive, info.filename)) for info in zf.infolist()]
            files = sum(not info.is_dir() and bool(rel.parts) for info, rel in members)
            with progress(files, f"extract {archive.name}", "file", log=logger) as bar:
                for info, rel in members:
                    if info.is_dir() or not rel.parts:
                        (target / rel).mkdir(parents=True, exist_ok=True)
                        continue
                    _write_member(zf.open(info), target / rel)
                    extracted.append(target / rel)
                    bar.update()
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tf:
            checked = []
            for member in tf.getmembers():
                rel = _check_entry(archive, member.name)
                if not (member.isfile() or member.isdir()):
                    raise UnsafeArchiveError(
                        f"{archive}: unsafe entry {member.name!r} (link, device or special file)"
                    )
                checked.append((member, rel))
            with progress(sum(member.isfile() for member, _ in checked), f"extract {archive.name}", "file", log=logger) as bar:
                for member, rel in checked:
                    if member.isdir():
                        (target / rel).mkdir(parents=True, exist_ok=True)
                        continue
                    reader = tf.extractfile(member)
                    assert reader is not None  # regular files always have content
                    _write_member(reader, target / rel)
                    extracted.append(target / rel)
                    bar.update()
    else:
        raise _damaged(archive, "not a readable zip or tar archive")
    return extracted


@contextlib.contextmanager
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


def _center_crop(image: Image.Image, max_side: int | None) -> Image.Image:
    if max_side is None:
        return image
    width, height = image.size
    new_w, new_h = min(width, max_side), min(height, max_side)
    if (new_w, new_h) == (width, height):
        return image
    left, top = (width - new_w) // 2, (height - new_h) // 2
    return image.crop((left, top, left + new_w, top + new_h))


def _export_split(
    sources: dict[str, Callable[[], Image.Image]],
    out_dir: Path,
    n_valid: int,
    seed: int,
    max_side: int | None,
    origin: str,
    valid_names: list[str] | None = None,
) -> None:
    """Write each source image as PNG into train/HR or valid/HR: ``valid_names`` held out when
    given, else ``n_valid`` images drawn by ``seed``."""
    count = len(sources)
    if count < 2:
        raise SrbenchError(f"{origin}: found {count} image(s), need at least 2 (train and valid)")
    if max_side is not None and max_side < 1:
        raise SrbenchError(f"max_side={max_side}: must be at least 1")
    if valid_names is not None:
        unknown = sorted(set(valid_names) - set(sources))
        if unknown:
            raise SrbenchError(f"valid_images: {unknown[0]!r} is not an image of {origin} ({', '.join(sorted(sources))})")
        n_valid = len(set(valid_names))
    if not 1 <= n_valid < count:
        raise SrbenchError(
            f"n_valid={n_valid}: must be between 1 and {count - 1} for {count} images in {origin}"
        )
    order = sorted(sources)
    random.Random(seed).shuffle(order)
    valid = set(valid_names) if valid_names is not None else set(order[:n_valid])
    with staged_folder(Path(out_dir)) as stage:
        for split in SPLITS:
            (stage / split / "HR").mkdir(parents=True)
        with progress(count, f"export {origin}", "image", log=logger) as bar:
            for name in sorted(sources):
                split = "valid" if name in valid else "train"
                image = _center_crop(to_rgb(sources[name](), name), max_side)
                image.save(stage / split / "HR" / f"{name}.png")
                bar.update()
    logger.info("%s: %d train and %d valid images", origin, count - n_valid, n_valid)


def export_samples(
    out_dir: Path, n_valid: int, seed: int, max_side: int | None, valid_names: list[str] | None = None
) -> None:
    """Write the colour photographs bundled with the installed packages (:data:`SAMPLE_IMAGES`) as a train/valid split."""
    sources = {
        name: (lambda load=load: Image.fromarray(load())) for name, load in SAMPLE_IMAGES.items()
    }
    _export_split(sources, out_dir, n_valid, seed, max_side, "sample photographs", valid_names)


def import_folder(
    folder: Path, out_dir: Path, n_valid: int, seed: int, max_side: int | None, valid_names: list[str] | None = None
) -> None:
    """Use the .png/.jpg/.jpeg images of ``folder`` (non-recursive) as a train/valid split."""
    folder = Path(folder)
    paths = list_images(folder)
    sources: dict[str, Callable[[], Image.Image]] = {}
    for path in paths:
        if path.stem in sources:
            raise SrbenchError(f"{path}: another image in {folder} has the same name {path.stem!r}")
        sources[path.stem] = lambda path=path: open_image(path)
    _export_split(sources, out_dir, n_valid, seed, max_side, str(folder), valid_names)
