"""What every stage shares: reading and checking params.yaml, logging, and the MLflow run."""

import json
import logging
import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
import yaml

from srbench.errors import SrbenchError

logger = logging.getLogger("srbench")

EXPERIMENT = "srbench"
TRACKING_DIR = Path("mlruns")
PARAMS_OPTION = typer.Option(Path("params.yaml"), "--params", help="Parameters file (one section per stage).")


class ParamError(SrbenchError):
    """A missing or invalid parameter; the message names the file, key and value."""


class Params:
    """params.yaml with typed, checked access: ``params.integer("srcnn.steps", minimum=1)``."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ParamError(f"{path}: parameters file not found")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ParamError(f"{path}: not valid YAML ({error})".replace("\n", " ")) from error
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

    def integer(self, key: str, minimum: int | None = None) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, value, "expected an integer")
        if minimum is not None and value < minimum:
            raise self._fail(key, value, f"must be >= {minimum}")
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
        value = self.get(key)
        if value not in choices:
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


def git_commit() -> str:
    """The checked-out commit (with ``-dirty`` when the tree has changes), or ``unknown``."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def tracking_uri(root: Path = TRACKING_DIR) -> str:
    """MLflow's SQLite store kept in ``mlruns/`` (MLflow 3 refuses the plain file store)."""
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@contextmanager
def mlflow_run(stage: str, params: dict[str, Any], model: str | None = None) -> Iterator[Any]:
    """Start an MLflow run in the ``srbench`` experiment, tagged with the stage, model and git
    commit, and yield the ``mlflow`` module to log with. An exception inside marks the run FAILED
    and propagates."""
    import mlflow  # imported here so that `srbench --help` and param errors stay fast

    TRACKING_DIR.mkdir(exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri())
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT, artifact_location=(TRACKING_DIR / "artifacts").resolve().as_uri())
    mlflow.set_experiment(EXPERIMENT)
    dvc_stage = os.environ.get("DVC_STAGE", "")
    name = dvc_stage or (f"{stage}@{model}" if model else stage)
    tags = {"stage": dvc_stage or stage, "git_commit": git_commit(), "launched_by": "dvc" if dvc_stage else "cli"}
    if model:
        tags["model"] = model
    with mlflow.start_run(run_name=name, tags=tags):
        mlflow.log_params(_flatten(params))
        yield mlflow


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, values: Any) -> None:
    """Write JSON atomically."""
    write_text(path, json.dumps(values, indent=2) + "\n")
