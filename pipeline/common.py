"""What every stage shares: reading and checking params.yaml, logging, signals, locks and output places
(the MLflow run: :mod:`pipeline.tracking`)."""

import fcntl
import json
import logging
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import typer
import yaml

from srbench.errors import SrbenchError
from srbench.files import write_text

logger = logging.getLogger("srbench")

PARAMS_OPTION = typer.Option(Path("params.yaml"), "--params", help="Parameters file (one section per stage).")


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM): unwinds like Ctrl-C, so that every stage's
    cleanup runs and its MLflow run ends KILLED."""


_terminating = False


def stop_on_sigterm() -> None:
    """Turn SIGTERM into :class:`Terminated` in this process, and remember it (:func:`terminating`)."""

    def handler(signum: int, frame: Any) -> None:
        global _terminating
        _terminating = True
        raise Terminated(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)


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


class ParamError(SrbenchError):
    """A missing or invalid parameter; the message names the file, key and value."""


class DuplicateKey(yaml.YAMLError):
    """A mapping in a YAML file gives the same key twice."""

    def __init__(self, key: str, line: int, first_line: int) -> None:
        super().__init__(f"duplicate key {key} at line {line} (first at line {first_line})")


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last
    silently), naming the key by its dotted path and the lines of both."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._paths: dict[yaml.Node, str] = {}  # value node -> its dotted key

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        prefix = self._paths.get(node, "")
        first_lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *anchor``: its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            dotted = f"{prefix}{key}"
            self._paths[value_node] = f"{dotted}."
            try:
                first = first_lines.get(key)
            except TypeError:  # an unhashable key: the base class refuses it
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise DuplicateKey(dotted, line, first)
            first_lines[key] = line
        return super().construct_mapping(node, deep)

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> list[Any]:
        prefix = self._paths.get(node, "").removesuffix(".")
        for index, item in enumerate(node.value):
            self._paths[item] = f"{prefix}[{index}]."
        return super().construct_sequence(node, deep)


class Params:
    """params.yaml with typed, checked access: ``params.integer("srcnn.steps", minimum=1)``."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ParamError(f"{path}: parameters file not found")
        try:
            data = yaml.load(path.read_text(), Loader=UniqueKeyLoader)
        except DuplicateKey as error:
            raise ParamError(f"{path}: {error}") from error
        except yaml.YAMLError as error:
            raise ParamError(f"{path}: not valid YAML ({error})".replace("\n", " ")) from error
        except UnicodeDecodeError as error:
            raise ParamError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error
        if not isinstance(data, dict):
            raise ParamError(f"{path}: expected a mapping of sections")
        self.path = path
        self.data = data

    def _fail(self, key: str, value: Any, problem: str) -> ParamError:
        return ParamError(f"{self.path}: {key} = {value!r}: {problem}")

    def get(self, key: str) -> Any:
        """The raw value at a dotted ``key``; a missing key is an error."""
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ParamError(f"{self.path}: missing key {key}")
            node = node[part]
        return node

    def section(self, key: str) -> dict[str, Any]:
        value = self.get(key)
        if not isinstance(value, dict):
            raise self._fail(key, value, "expected a mapping")
        return value

    def integer(self, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, value, "expected an integer")
        if minimum is not None and value < minimum:
            raise self._fail(key, value, f"must be >= {minimum}")
        if maximum is not None and value > maximum:
            raise self._fail(key, value, f"must be <= {maximum}")
        return value

    def optional_integer(self, key: str, minimum: int | None = None) -> int | None:
        return None if self.get(key) is None else self.integer(key, minimum)

    def positive_float(self, key: str) -> float:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise self._fail(key, value, "must be a positive number")
        return float(value)

    def non_negative_float(self, key: str) -> float:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise self._fail(key, value, "must be a number >= 0")
        return float(value)

    def optional_positive_float(self, key: str) -> float | None:
        return None if self.get(key) is None else self.positive_float(key)

    def choice(self, key: str, choices: Sequence[Any]) -> Any:
        """The value at ``key``, one of ``choices`` in value and type (``2.0`` is not ``2``, ``1`` not ``True``)."""
        value = self.get(key)
        if not any(type(value) is type(choice) and value == choice for choice in choices):
            raise self._fail(key, value, f"choose one of {', '.join(map(str, choices))}")
        return value

    def string(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str) or not value:
            raise self._fail(key, value, "expected a non-empty string")
        return value

    def existing_file(self, key: str) -> Path:
        path = Path(self.string(key)).expanduser()
        if not path.is_file():
            raise self._fail(key, str(path), "file not found")
        return path

    def existing_dir(self, key: str) -> Path:
        path = Path(self.string(key)).expanduser()
        if not path.is_dir():
            raise self._fail(key, str(path), "folder not found")
        return path


def setup_logging() -> None:
    """Progress to stderr with timestamps; quiet third-party chatter."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("mlflow", "alembic", "urllib3", "matplotlib", "PIL", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def write_json(path: Path, values: Any) -> None:
    """Write JSON atomically."""
    write_text(path, json.dumps(values, indent=2) + "\n")


def dvc_paths(lock_text: str, kinds: tuple[str, ...] = ("outs",)) -> dict[str, str]:
    """The paths a ``dvc.lock`` text lists as ``kinds`` (``outs``, ``deps``) of its stages,
    relative to the repository, each with the first stage listing it; an unreadable text lists none."""
    try:
        stages = (yaml.safe_load(lock_text) or {}).get("stages", {})
    except (yaml.YAMLError, AttributeError):
        return {}
    paths: dict[str, str] = {}
    for stage, entries in stages.items() if isinstance(stages, dict) else []:
        for kind in kinds:
            for entry in entries.get(kind, []) if isinstance(entries, dict) else []:
                if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                    paths.setdefault(entry["path"].rstrip("/"), stage)
    return paths


def refuse_pipeline_paths(option: str, target: Path, lock: Path = Path("dvc.lock")) -> None:
    """Refuse ``target`` (a folder a command would replace) when it is, holds or lies inside a
    path the DVC pipeline of ``lock`` reads or writes: ``dvc repro`` would overwrite it, or it
    would change a stage's inputs, or replacing it would delete the pipeline's files."""
    if not lock.is_file():
        return
    here = target.resolve()
    for path, stage in dvc_paths(lock.read_text(encoding="utf-8"), ("deps", "outs")).items():
        owned = (lock.parent / path).resolve()
        if here == owned or here.is_relative_to(owned) or owned.is_relative_to(here):
            raise ParamError(f"{option} {target}: overlaps {path}, which the DVC pipeline's stage {stage} uses; choose a folder outside it")


def ensure_writable(*folders: Path) -> None:
    """Check, before any long work, that a file can be created in each of ``folders`` (made if
    missing): a read-only place or a full disk is one line naming the folder, now rather than
    when the results are written."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder) as probe:
                probe.write(b"srbench")
                probe.flush()
        except OSError as error:
            raise OutputError(f"{folder}: cannot write here ({error.strerror or error})") from error


class OutputError(SrbenchError):
    """An output place that cannot be written."""


class WorkspaceBusy(SrbenchError):
    """Another srbench process holds the lock on the same work."""


LOCK_DIR = Path(".srbench/locks")


@contextmanager
def workspace_lock(name: str, work: str | None = None) -> Iterator[IO[str]]:
    """Hold ``.srbench/locks/NAME.lock`` for the duration: a second process asking for the same
    lock in this workspace is refused at once, in one line naming the holder (``work``, default
    NAME, and its pid). The lock is the kernel's (``flock``), so a killed process never leaves a
    stale one; it belongs to the open file yielded, which a child process given its descriptor
    holds too."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    path = LOCK_DIR / f"{name}.lock"
    with open(path, "a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or f"{name} (another process)"
            raise WorkspaceBusy(f"{path}: {holder} is already running in this workspace; wait for it or stop it") from None
        file.seek(0)
        file.truncate()
        file.write(f"{work or name} (pid {os.getpid()})")
        file.flush()
        try:
            yield file
        finally:
            file.truncate(0)
            fcntl.flock(file, fcntl.LOCK_UN)
