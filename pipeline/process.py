"""The stage process: its logging, its signals (SIGTERM unwinds like Ctrl-C, a child is passed
the signal) and its workspace locks (one process per piece of work)."""

import fcntl
import hashlib
import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any

from srbench.errors import SrbenchError

logger = logging.getLogger("srbench")


def setup_logging() -> None:
    """Progress to stderr with timestamps; quiet third-party chatter."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("mlflow", "alembic", "urllib3", "matplotlib", "PIL", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM): unwinds like Ctrl-C, so that every stage's
    cleanup runs and its MLflow run ends KILLED."""


_terminating = False
_deferring = 0  # depth of sigterm_deferred blocks
_held: str | None = None  # a signal that arrived inside one


def stop_on_sigterm() -> None:
    """Turn SIGTERM into :class:`Terminated` in this process (held back inside
    :func:`sigterm_deferred`), and remember it (:func:`terminating`)."""

    def handler(signum: int, frame: Any) -> None:
        global _terminating, _held
        _terminating = True
        if _deferring:
            _held = signal.Signals(signum).name
            return
        raise Terminated(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)


@contextmanager
def sigterm_deferred() -> Iterator[None]:
    """Hold back a SIGTERM that arrives inside the block until it ends, then raise
    :class:`Terminated`: for writes that must not be cut in half, such as MLflow's to its SQLite
    store (a write cut by SIGTERM once left the database locked for the run's KILLED mark)."""
    global _deferring, _held
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _held is not None:
            name, _held = _held, None
            raise Terminated(name)


def wait_passing_signals(process: subprocess.Popen, grace: float) -> int:
    """Wait for ``process`` to exit and return its exit status. If this process is interrupted
    meanwhile (SIGTERM, Ctrl-C), send the child SIGTERM, give it ``grace`` seconds to end
    cleanly (its MLflow run, its outputs), kill it after that, and re-raise."""
    try:
        return process.wait()
    except BaseException:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise


def terminating() -> bool:
    """Whether this process was sent SIGTERM: whatever error follows (e.g. a collective whose peer
    process was stopped first) is part of being stopped."""
    return _terminating


class WorkspaceBusy(SrbenchError):
    """Another srbench process holds the lock on the same work."""


LOCK_DIR = Path(".srbench/locks")


@contextmanager
def workspace_lock(
    name: str, work: str | None = None, directory: Path = LOCK_DIR, shared: bool = False, readers: str = "another srbench process"
) -> Iterator[IO[str]]:
    """Hold ``.srbench/locks/NAME.lock`` (in ``directory``) for the duration: a second process
    asking for the same lock is refused at once, in one line naming the holder (``work``, default
    NAME, and its pid). ``shared``: held together with other shared holders (``readers``, which
    write no name), refused while an exclusive holder has it and refusing one while held. The
    lock is the kernel's (``flock``), so a killed process never leaves a stale one; it belongs
    to the open file yielded, which a child process given its descriptor holds too."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.lock"
    with open(path, "a+") as file:
        try:
            fcntl.flock(file, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or readers
            raise WorkspaceBusy(f"{path}: {holder} is already running in this workspace; wait for it or stop it") from None
        if not shared:
            file.seek(0)
            file.truncate()
            file.write(f"{work or name} (pid {os.getpid()})")
            file.flush()
        try:
            yield file
        finally:
            if not shared:
                file.truncate(0)
            fcntl.flock(file, fcntl.LOCK_UN)


def data_lock(folder: Path, writer: str | None = None) -> AbstractContextManager[IO[str]]:
    """The lock on the data in ``folder``: its readers (trainings) share it, its writer
    (``writer``: download, prepare) holds it alone, so that no data is replaced under a training
    that reads it (a x2 model trained while prepare made x4 data)."""
    name = f"data-{folder.name}-{hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]}"
    return workspace_lock(name, writer, shared=writer is None, readers=f"a training reading {folder}")
