"""Safe extraction of .zip and .tar(.gz) archives (:func:`safe_extract`).

Every entry is checked before anything is written. A damaged archive that passed its checksum
(so the checksum itself describes the damaged file) is reported in one line naming it; it is not
deleted, since downloading it again from the same source would give the same bytes.
"""

from __future__ import annotations

import contextlib
import logging
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from srbench.errors import DownloadError, UnsafeArchiveError
from srbench.files import naming
from srbench.progress import progress

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20  # bytes copied per read


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
