"""The MLflow run every stage logs to: a SQLite store in the workspace's ``mlruns/``."""

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EXPERIMENT = "srbench"
TRACKING_DIR = Path("mlruns")


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
