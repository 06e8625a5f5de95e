"""The MLflow run every stage logs to.

Where runs go: by default into the workspace's own SQLite store ``mlruns/mlflow.db``, with
artifacts under ``mlruns/artifacts/`` (MLflow 3 refuses the plain file store). The workspace is
the current directory, except in the temporary copy that ``dvc exp run --temp`` (or a queued
experiment) runs in, ``$DVC_ROOT/.dvc/tmp/exps/...``: there it is ``$DVC_ROOT``, the user's
workspace, so that those runs outlive the copy. MLflow stores artifact locations as absolute
URIs; a workspace copied or moved elsewhere notices, at its next stage (or ``srbench ui``), that
its store points at another ``mlruns/artifacts`` and takes its runs, logged models and registry
versions over (see :func:`_adopt_moved_store`), so that it never writes into, nor loads from, the
original. ``MLFLOW_TRACKING_URI``, when set, is used unchanged instead, and
MLflow decides where artifacts go.

The ``srbench`` experiment opens in ``mlflow ui`` on its runs (``mlflow.experimentKind``) and
offers a saved view, "PSNR / SSIM", with the quality columns shown (:func:`experiment_tags`);
``srbench ui`` opens that view. Runs are named ``STAGE@MODEL #N`` (or ``STAGE #N``), the same
whether DVC or a person started the stage, numbered within the experiment.

Every run records the process logging it (``srbench.host``, ``srbench.pid``,
``srbench.process_start``); a run whose process died without closing it (``kill -9``, a crash, a
reboot) is marked KILLED when the next run starts on the same host.
"""

import functools
import json
import logging
import os
import socket
import sqlite3
import subprocess
import time
import types
import urllib.parse
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import Any


from pipeline.outputs import OutputError, dvc_paths
from pipeline.process import Terminated, sigterm_deferred, terminating
from srbench.errors import SrbenchError

logger = logging.getLogger("srbench")

EXPERIMENT = "srbench"
TRACKING_DIR = Path("mlruns")
ARTIFACTS = "artifacts"  # under TRACKING_DIR
URI_VARIABLE = "MLFLOW_TRACKING_URI"
HOST_TAG, PID_TAG, START_TAG = "srbench.host", "srbench.pid", "srbench.process_start"
KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"  # not the GenAI pages
VIEW_KEY = "srbench"  # the saved view's key: ...#/experiments/ID/runs?viewStateShareKey=srbench
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
DESCRIPTION_TAG = "mlflow.note.content"
#: The saved view's columns (the MLflow UI's keys): the model registered by a training (Models)
#: or scored by an evaluation (``model_version``: MLflow 3.17's run search returns no model
#: inputs, so its Models column shows outputs only), the quality (Y-PSNR/SSIM on the held-out split: a training's last
#: validation, an evaluation's score, bicubic's too) and speed, where it ran (the data set is on
#: each run's page).
VIEW_COLUMNS = (
    "attributes.`Models`", "tags.`model_version`",
    "metrics.`psnr_y`", "metrics.`ssim_y`",
    "metrics.`training_seconds`", "metrics.`megapixels_per_second`",
    "params.`precision`", "params.`device_name`", "tags.`model`", "tags.`seed`",
)
VIEW_SAVED_AT = 1767225600000  # a fixed time (ms), so that the tag's value never changes by itself
DESCRIPTION = (
    "srbench: one run per pipeline stage (download, prepare, train, evaluate, report), named "
    "STAGE@MODEL #N. The view **PSNR / SSIM** (Views menu, or `srbench ui`) shows the quality "
    "columns; each trained model is registered as `srbench-MODEL`."
)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def _changed_files() -> list[str]:
    """The tracked files that differ from HEAD (index or working tree), relative to the repository."""
    entries = _git("status", "--porcelain=v1", "-z", "--untracked-files=no").split("\0")
    changed, index = [], 0
    while index < len(entries):
        entry = entries[index]
        if entry:
            changed.append(entry[3:])
            if entry[0] in "RC":  # a rename or copy: the next entry is its former path
                index += 1
        index += 1
    return changed


def git_commit() -> str:
    """The checked-out commit, with ``-dirty`` when a tracked file other than what DVC writes
    differs from it; ``unknown`` outside a git repository. ``dvc.lock``, the outputs its stages
    list (in the working tree's and in HEAD's lock) and the ``.gitignore`` files beside them are
    what ``dvc repro`` rewrites as it runs: they make no run of a pipeline dirty."""
    try:
        commit = _git("rev-parse", "HEAD").strip()
        root = Path(_git("rev-parse", "--show-toplevel").strip())
        changed = _changed_files()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    locks = [(root / "dvc.lock").read_text()] if (root / "dvc.lock").is_file() else []
    with suppress(subprocess.CalledProcessError):
        locks.append(_git("show", "HEAD:dvc.lock"))
    outputs = set().union(*(dvc_paths(text) for text in locks))
    outputs |= {"dvc.lock"} | {(PurePosixPath(out).parent / ".gitignore").as_posix() for out in outputs}  # DVC lists its outputs there
    dirty = [path for path in changed if not any(path == out or path.startswith(f"{out}/") for out in outputs)]
    return commit + ("-dirty" if dirty else "")


def workspace() -> Path:
    """The workspace whose ``mlruns/`` receives the runs: the current directory or, inside the
    temporary copy DVC makes for ``dvc exp run --temp`` and queued experiments (a folder under
    ``$DVC_ROOT/.dvc/tmp/exps/``; DVC then sets ``DVC_ROOT`` to the user's workspace), that
    workspace. A ``DVC_ROOT`` inherited by a process outside such a copy is ignored. A subfolder
    of a workspace (a folder without dvc.yaml below one with it) is refused in one line."""
    here = Path.cwd().resolve()
    root = os.environ.get("DVC_ROOT")
    if root:
        root_path = Path(root).resolve()
        if here.is_relative_to(root_path / ".dvc" / "tmp" / "exps"):
            return root_path
    if not (here / "dvc.yaml").is_file() and (above := next((path for path in here.parents if (path / "dvc.yaml").is_file()), None)):
        raise SrbenchError(f"{here}: a subfolder of the workspace {above}; run srbench there (its runs, locks and outputs are the workspace's)")
    return here


def tracking_uri(root: Path | None = None) -> str:
    """The SQLite store in ``root`` (an ``mlruns`` folder; default: this workspace's). SQLAlchemy
    reads ``?`` as the start of a query and ``%XX`` as an escape, so a path holding ``?``, ``#`` or
    ``%`` is percent-encoded whole, its slashes too: MLflow creates the parent folders of the
    path it reads undecoded from the URI, which is then one name in the current folder ("."),
    not a stray tree of encoded names."""
    root = workspace() / TRACKING_DIR if root is None else root
    path = str((root / "mlflow.db").resolve())
    return f"sqlite:///{urllib.parse.quote(path, safe='') if any(character in path for character in '?#%') else path}"


def output_places() -> list[Path]:
    """The folders runs write into, for a stage to check before its work: the workspace's store
    and artifacts, or none when ``MLFLOW_TRACKING_URI`` sends the runs elsewhere."""
    root = workspace() / TRACKING_DIR  # workspace() first, whatever the store: a subfolder is refused either way
    if os.environ.get(URI_VARIABLE):
        return []
    return [root, root / ARTIFACTS]


def artifact_root(root: Path) -> str:
    """Where the runs of the store in ``root`` (an ``mlruns`` folder) keep their artifacts."""
    return (root / ARTIFACTS).resolve().as_uri()


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# Where MLflow's SQLite store keeps artifact locations (absolute URIs derived from the
# experiment's): table, column, extra condition.
_LOCATION_COLUMNS = [
    ("experiments", "artifact_location", ""),
    ("runs", "artifact_uri", ""),
    ("logged_models", "artifact_location", ""),
    ("model_versions", "storage_location", ""),  # what `models:/NAME/N` loads
    ("trace_tags", "value", " AND key = 'mlflow.artifactLocation'"),
]


def _is_mlruns_artifacts(location: str) -> bool:
    """Whether ``location`` is a local ``.../mlruns/artifacts`` folder (this module's layout), as
    opposed to a place a user chose (a server, object storage)."""
    parsed = urllib.parse.urlparse(location)
    return parsed.scheme in ("file", "") and urllib.parse.unquote(parsed.path).rstrip("/").endswith(f"/{TRACKING_DIR}/{ARTIFACTS}")


def _adopt_moved_store(db: Path, old: str, new: str) -> None:
    """Point every artifact location under ``old`` in the SQLite store ``db`` at ``new`` instead:
    the experiment (so that new runs write under ``new``), and the runs, logged models, registered
    model versions and traces logged before the workspace was copied or moved (their artifacts
    were copied with it)."""
    with closing(sqlite3.connect(db, timeout=60)) as connection, connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, column, condition in _LOCATION_COLUMNS:
            if table in tables:
                connection.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                    f"WHERE ({column} = ? OR substr({column}, 1, ?) = ?){condition}",
                    (new, len(old) + 1, old, len(old) + 1, old + "/"),
                )


def experiment_tags() -> dict[str, str]:
    """The ``srbench`` experiment's tags for the MLflow UI: the experiment kind (model training:
    the runs, not the GenAI overview of traces), the saved view "PSNR / SSIM" (the quality columns
    shown, the runs ranked by ``psnr_y``: every training, evaluation and bicubic in one column,
    runs without it last) and a description."""
    state = {"selectedColumns": list(VIEW_COLUMNS), "orderByKey": "metrics.`psnr_y`", "orderByAsc": False}
    view = {"name": "PSNR / SSIM", "createdAt": VIEW_SAVED_AT, "updatedAt": VIEW_SAVED_AT, "state": json.dumps(state)}
    return {KIND_TAG: MODEL_TRAINING, VIEW_TAG: json.dumps(view), DESCRIPTION_TAG: DESCRIPTION}


def _tag_experiment(client: Any, experiment_id: str, tags: dict[str, str]) -> None:
    """Give the experiment :func:`experiment_tags`: the view always (it is srbench's), the kind
    and description where none is set (a user may change them in the UI); unchanged tags are not
    rewritten."""
    for key, value in experiment_tags().items():
        if tags.get(key) != value and (key == VIEW_TAG or key not in tags):
            client.set_experiment_tag(experiment_id, key, value)


def use_store(mlflow: Any) -> str:
    """Point ``mlflow`` at the store runs go to (see the module's docstring) and return the id
    of the ``srbench`` experiment in it, created if missing and given :func:`experiment_tags`."""
    from mlflow.exceptions import MlflowException

    user_uri = os.environ.get(URI_VARIABLE)
    location = None
    if user_uri:
        mlflow.set_tracking_uri(user_uri)
    else:
        root = workspace() / TRACKING_DIR
        if root.resolve() != (Path.cwd() / TRACKING_DIR).resolve():
            logger.info("in DVC's temporary copy of the workspace: MLflow runs go to %s", root)
        root.mkdir(parents=True, exist_ok=True)
        if (root / "mlflow.db").exists() and not os.access(root / "mlflow.db", os.W_OK):  # e.g. on a read-only mount
            raise OutputError(f"{root / 'mlflow.db'}: cannot write the MLflow store (read-only)")
        location = artifact_root(root)
        mlflow.set_tracking_uri(tracking_uri(root))
        os.environ.pop(URI_VARIABLE, None)  # set_tracking_uri exports it; children find their own workspace
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        try:
            experiment = mlflow.get_experiment(mlflow.create_experiment(EXPERIMENT, artifact_location=location))
        except MlflowException:  # another stage created it meanwhile
            experiment = mlflow.get_experiment_by_name(EXPERIMENT)
            if experiment is None:
                raise
    _tag_experiment(mlflow.MlflowClient(), experiment.experiment_id, experiment.tags)
    if location is not None and experiment.artifact_location != location and _is_mlruns_artifacts(experiment.artifact_location):
        logger.info("%s was copied or moved here from %s: its runs now point at %s", root, experiment.artifact_location, location)
        _adopt_moved_store(root / "mlflow.db", experiment.artifact_location, location)
    return experiment.experiment_id


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _kernel() -> str | None:
    """``BOOT_ID/PID_NAMESPACE`` of this process (Linux): the pids this process can see and
    compare; None where ``/proc`` cannot tell."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        return None
    return None if boot is None else f"{boot}/{namespace}"


def _stat(pid: int) -> tuple[str, str] | None:
    """The state and start time (clock ticks after boot) of process ``pid``, from ``/proc``."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    fields = text.rpartition(")")[2].split()  # after "PID (COMMAND)", which may hold spaces
    return fields[0], fields[19]


def _this_process() -> dict[str, str]:
    """Tags that name this process: host and pid and, on Linux, ``BOOT_ID/PID_NAMESPACE/START``,
    which tells it apart from a later process given the same pid."""
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    kernel, stat = _kernel(), _stat(os.getpid())
    if kernel and stat:
        tags[START_TAG] = f"{kernel}/{stat[1]}"
    return tags


def _has_ended(pid: int, recorded_start: str | None) -> bool | None:
    """Whether process ``pid`` of this host, started as ``recorded_start`` says, has ended;
    None where that cannot be told from here."""
    if recorded_start:
        kernel = _kernel()
        try:
            boot, namespace, start = recorded_start.split("/")
            our_boot, our_namespace = (kernel or "/").split("/")
        except ValueError:
            return None
        if boot != our_boot:
            return True if kernel else None  # the machine rebooted since
        if namespace != our_namespace:
            return None  # another container on this kernel: its pids are not ours to see
        stat = _stat(pid)
        if stat is not None:
            state, started = stat
            return state in ("Z", "X") or started != start  # a zombie, or the pid reused
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's (its /proc entry may be hidden)
        return False
    return False


def _close_abandoned_runs(client: Any, experiment_id: str) -> None:
    """Mark KILLED the RUNNING runs of this host whose process has ended without closing them."""
    host = socket.gethostname()
    runs = client.search_runs(
        [experiment_id], filter_string=f"attributes.status = 'RUNNING' AND tags.`{HOST_TAG}` = '{host}'", max_results=1000
    )
    for run in runs:
        tags = run.data.tags
        try:
            pid = int(tags.get(PID_TAG, ""))
        except ValueError:
            continue
        if _has_ended(pid, tags.get(START_TAG)):
            logger.warning(
                "MLflow run %s (%s) was left RUNNING by process %d on %s, which has ended: marked KILLED",
                run.info.run_name, run.info.run_id, pid, host,
            )
            client.set_tag(run.info.run_id, "srbench.killed", f"process {pid} on {host} ended without closing the run")
            client.set_terminated(run.info.run_id, status="KILLED", end_time=int(time.time() * 1000))


def _number(name: str, base: str) -> int | None:
    """N of a run named ``BASE #N``; None for any other name."""
    number = name.removeprefix(f"{base} #")
    return int(number) if number != name and number.isdigit() else None


def _next_name(client: Any, experiment_id: str, base: str) -> str:
    """``BASE #N``, N one above the highest of the experiment's runs (deleted ones included)."""
    from mlflow.entities import ViewType

    runs = client.search_runs([experiment_id], f"attributes.run_name LIKE '{base} #%'", ViewType.ALL, max_results=50_000)
    numbers = [_number(run.info.run_name, base) for run in runs]
    return f"{base} #{max((n for n in numbers if n is not None), default=0) + 1}"


def _settle_name(client: Any, run: Any, base: str) -> None:
    """Rename ``run`` while an earlier run (another process that picked its name at the same
    moment) holds the same name: names stay unique within the experiment."""
    from mlflow.entities import ViewType

    name = run.info.run_name
    for _ in range(10):
        same = client.search_runs([run.info.experiment_id], f"attributes.run_name = '{name}'", ViewType.ALL)
        if all((other.info.start_time, other.info.run_id) >= (run.info.start_time, run.info.run_id) for other in same):
            return
        name = _next_name(client, run.info.experiment_id, base)
        client.update_run(run.info.run_id, name=name)


def log_dataset(mlflow: Any, path: Path, digest: str, context: str, tags: dict[str, str] | None = None) -> Any:
    """Log the data folder ``path`` as an input of the active run (its Dataset column) and return
    it, for metrics measured on it (``log_metrics(..., dataset=...)``): an MLflow dataset of
    metadata only, named by ``path`` as given, its source the folder's absolute path, ``digest`` a
    fingerprint of its content (at most 36 characters, MLflow's limit) and ``context`` what the
    run did with it (``training``, ``validation``, ``evaluation``)."""
    from mlflow.data.dataset_source_registry import get_dataset_source_from_json
    from mlflow.data.meta_dataset import MetaDataset

    if not 0 < len(digest) <= 36:
        raise ValueError(f"dataset digest {digest!r}: 1 to 36 characters")
    source = get_dataset_source_from_json(json.dumps({"uri": path.resolve().as_uri()}), "local")
    dataset = MetaDataset(source, name=path.as_posix(), digest=digest)
    mlflow.log_input(dataset, context=context, tags=tags)
    return dataset


WEIGHTS_TAG = "srbench.weights_sha256"  # of a logged model and its registry version: the weights file it was saved as


def registered_name(model: str) -> str:
    """The Model Registry's name for ``model``'s versions."""
    return f"srbench-{model}"


def registered_version(mlflow: Any, model: str, weights_digest: str) -> tuple[str, str] | None:
    """The logged model id and ``srbench-MODEL/N`` of the newest registered version of ``model``
    saved as weights with sha256 ``weights_digest`` (a DVC run-cache restore or a bit-identical
    retraining gives the same file), or None when this store never registered that file."""
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return None
    logged = client.search_logged_models(
        [experiment.experiment_id], filter_string=f"name = '{model}' AND tags.`{WEIGHTS_TAG}` = '{weights_digest}'",
        order_by=[{"field_name": "creation_time", "ascending": False}], max_results=1,
    )
    for found in logged:
        versions = client.search_model_versions(f"name = '{registered_name(model)}' AND run_id = '{found.source_run_id}'")
        if versions:
            return found.model_id, f"{registered_name(model)}/{versions[0].version}"
    return None


SIGNIFICANT_DIGITS = 6  # of a logged metric: 33.6597 dB, 0.940414, a loss of 0.00164123


def rounded(value: float) -> float:
    """``value`` to :data:`SIGNIFICANT_DIGITS` significant digits: what the MLflow UI shows (a
    float's seventeen digits are noise there; the DVC metrics files keep them all)."""
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


class _StageTracking:
    """A module (mlflow, or one of its submodules) as a stage logs with: every function runs with
    SIGTERM held back until it returns (:func:`pipeline.process.sigterm_deferred`: a stop never
    cuts a write to the tracking store in half), and ``log_metric``/``log_metrics`` round the
    values (:func:`rounded`)."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if isinstance(value, types.ModuleType):
            return _StageTracking(value)
        if not callable(value) or isinstance(value, type):
            return value

        @functools.wraps(value)
        def deferred(*args: Any, **kwargs: Any) -> Any:
            if name == "log_metrics" and args:
                args = ({key: rounded(number) for key, number in args[0].items()}, *args[1:])
            elif name == "log_metric" and len(args) > 1:
                args = (args[0], rounded(args[1]), *args[2:])
            with sigterm_deferred():
                return value(*args, **kwargs)

        return deferred


@contextmanager
def mlflow_run(stage: str, params: dict[str, Any], model: str | None = None, seed: int | None = None) -> Iterator[Any]:
    """Start an MLflow run in the ``srbench`` experiment, named ``STAGE@MODEL #N`` (``STAGE #N``
    without a model; N numbers the runs of that name), tagged with the stage (DVC's name for it
    under DVC), model, training seed (if any), git commit, DVC experiment and process, and yield the ``mlflow`` module to
    log with (each of its calls shielded from SIGTERM while it writes, metrics rounded: :class:`_StageTracking`).
    SIGTERM (:class:`Terminated`, or any error once the process was sent SIGTERM) or Ctrl-C
    inside marks the run KILLED, another exception FAILED; both propagate. Runs of this host left
    RUNNING by a process that has ended are marked KILLED first."""
    import mlflow  # imported here so that `srbench --help` and param errors stay fast
    from mlflow.entities import RunStatus

    experiment_id = use_store(mlflow)
    client = mlflow.MlflowClient()
    _close_abandoned_runs(client, experiment_id)
    mlflow.set_experiment(experiment_id=experiment_id)
    dvc_stage = os.environ.get("DVC_STAGE", "")
    base = f"{stage}@{model}" if model else stage
    tags = {"stage": dvc_stage or stage, "git_commit": git_commit(), "launched_by": "dvc" if dvc_stage else "cli"}
    if model:
        tags["model"] = model
    if seed is not None:
        tags["seed"] = str(seed)
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp"] = os.environ["DVC_EXP_NAME"]
    tags |= _this_process()
    with mlflow.start_run(run_name=_next_name(client, experiment_id, base), tags=tags) as run:
        try:
            with sigterm_deferred():
                _settle_name(client, run, base)
                mlflow.log_params(_flatten(params))
            yield _StageTracking(mlflow)
        except BaseException as error:
            if isinstance(error, (Terminated, KeyboardInterrupt)) or terminating():  # e.g. a collective whose peer was stopped first
                with sigterm_deferred():  # a second SIGTERM waits for the mark
                    mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))  # start_run's exit then leaves it
            raise
