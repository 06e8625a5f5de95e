"""Writing files so that nothing is ever half-written: a uniquely named temporary file next to the
target, renamed over it only when complete, removed when anything fails. Two processes writing
the same target never share a temporary file."""

import errno
import glob
import hashlib
import io
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_leftovers(path: Path) -> None:
    """Remove what a killed writer of ``path`` left beside it (``kill -9`` runs no cleanup): the
    temporary files and staging folders of :func:`atomic_path` and :func:`staged_folder`, named
    ``.NAME.PID.*``, whose process is gone."""
    if not path.parent.is_dir():
        return
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*"):
        pid = leftover.name[len(path.name) + 2 :].split(".")[0]
        if leftover.suffix in (".tmp", ".staging", ".old") and pid.isdigit() and not _alive(int(pid)):
            logger.info("removing %s, left by process %s which has ended", leftover, pid)
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary path in ``path``'s folder to write to; on success it replaces
    ``path`` (one rename), on any exception it is removed and ``path`` is left as it was.
    Leftovers of writers of ``path`` that were killed are removed first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    tmp = _sibling(path, "tmp")  # created by the writer, with the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _sibling(path: Path, kind: str) -> Path:
    """A new name beside ``path`` for this process: ``.NAME.PID.TOKEN.KIND``."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.{kind}")


def make_staging_folder(path: Path) -> Path:
    """A new folder beside ``path``, named for this process, with the permissions of a plain mkdir."""
    remove_leftovers(path)
    staging = _sibling(path, "staging")
    staging.mkdir()
    return staging


@contextmanager
def staged_folder(path: Path) -> Iterator[Path]:
    """Yield a fresh folder beside ``path`` to fill; on success it takes ``path``'s place (the old
    folder, if any, is removed only then, and put back should the swap fail), on any exception it
    is removed and ``path`` is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging_folder(path)
    try:
        yield staging
        if not path.exists():
            os.replace(staging, path)
            return
        old = _sibling(path, "old")
        old.mkdir()
        try:
            os.replace(path, old / path.name)
            try:
                os.replace(staging, path)
            except BaseException:
                os.replace(old / path.name, path)
                raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextmanager
def naming(path: Path) -> Iterator[None]:
    """Re-raise a system error inside (a full disk, a refused write) as one naming ``path``, not
    the temporary file beside it that was being written."""
    try:
        yield
    except OSError as error:
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error


def reserve(path: Path) -> None:
    """Allocate every block of ``path`` (the file of a memory map just made, sparse) now: a page
    of a sparse map written on a full disk kills the process with SIGBUS ("Bus error", no
    message, nothing cleaned), a reservation fails with ``OSError`` ENOSPC naming the file."""
    with open(path, "r+b") as file:
        try:
            os.posix_fallocate(file.fileno(), 0, os.fstat(file.fileno()).st_size)
        except OSError as error:
            if error.errno in (errno.EOPNOTSUPP, errno.ENOSYS):  # a file system without it: the map stays sparse
                return
            raise OSError(error.errno, os.strerror(error.errno), str(path)) from error


def write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically. A full disk or a refused write raises ``OSError``
    naming the file."""
    with naming(path), atomic_path(path) as tmp, open(tmp, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def write_text(path: Path, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    write_bytes(path, text.encode("utf-8"))


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` atomically. The object is serialised in memory first and written with plain
    file I/O, so that a full disk is ``OSError: [Errno 28] No space left on device: PATH`` rather
    than torch's ``iostream error``."""
    import torch  # imported here: seconds that the stages which never save a tensor need not pay

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getbuffer())


def file_digest(path: Path, sample_blocks: int | None = None, block_size: int = 1 << 16, algorithm: str = "sha256") -> str:
    """The hex digest (``algorithm``: sha256, md5, ...) of a file, or with ``sample_blocks`` (at
    least 2) of its size and that many evenly spaced blocks: cheap for a patch store of many GB,
    and different for another store unless that store differs only between the blocks read. A
    failed read names the file."""
    digest = hashlib.new(algorithm, usedforsecurity=False)  # integrity and identity, not security
    with naming(path), open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if sample_blocks is None or sample_blocks < 2 or size <= sample_blocks * block_size:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
        else:
            digest.update(str(size).encode())
            for index in range(sample_blocks):
                file.seek((size - block_size) * index // (sample_blocks - 1))
                digest.update(file.read(block_size))
    return digest.hexdigest()


def tree_digest(paths: list[Path], root: Path, sample_blocks: int | None = None) -> str:
    """One sha256 over the names (relative to ``root``) and :func:`file_digest` of ``paths``."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(f"{path.relative_to(root).as_posix()}\0{file_digest(path, sample_blocks)}\0".encode())
    return digest.hexdigest()
