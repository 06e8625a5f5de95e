"""Writing files so that nothing is ever half-written: a uniquely named temporary file next to the
target, renamed over it only when complete, removed when anything fails. Two processes writing
the same target never share a temporary file."""

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary path in ``path``'s folder to write to; on success it replaces
    ``path`` (one rename), on any exception it is removed and ``path`` is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically. A full disk or a refused write raises ``OSError``
    naming the file."""
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
    except OSError as error:  # name the target, not the temporary file
        raise OSError(error.errno, error.strerror, str(path)) from error


def write_text(path: Path, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    write_bytes(path, text.encode("utf-8"))


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` atomically. The object is serialised in memory first and written with plain
    file I/O, so that a full disk is ``OSError: [Errno 28] No space left on device: PATH`` rather
    than torch's ``iostream error``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getvalue())
