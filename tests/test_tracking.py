"""The MLflow side of every stage: the workspace's SQLite store under mlruns/ (or
MLFLOW_TRACKING_URI), the experiment opening on its runs with a quality view, unique run names,
tags, a git commit that DVC's own writes leave clean, logged data sets, FAILED on exceptions,
KILLED on SIGTERM, Ctrl-C and kill -9, runs of a copied workspace or of `dvc exp run --temp` kept
in the right mlruns/, and `srbench ui` serving the workspace's store."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import yaml
from local_server import free_port

from pipeline.params import ParamError, Params
from pipeline.process import Terminated
from pipeline.tracking import EXPERIMENT, KIND_TAG, VIEW_TAG, experiment_tags, git_commit, log_dataset, mlflow_run, tracking_uri

REPO = Path(__file__).resolve().parents[1]
VARIABLES = ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_STAGE", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No tracking URI or DVC variable from the outside, and none left behind (MLflow's
    set_tracking_uri exports MLFLOW_TRACKING_URI to os.environ)."""
    saved = {name: os.environ.pop(name) for name in VARIABLES if name in os.environ}
    yield
    for name in VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(saved)


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite database with its tables and no experiment of ours: creating the tables
    takes seconds, copying them does not."""
    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


def new_workspace(path: Path, empty_store: Path) -> Path:
    (path / "mlruns").mkdir(parents=True)
    shutil.copy(empty_store, path / "mlruns" / "mlflow.db")
    return path


@pytest.fixture
def workspace(tmp_path: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with an empty store, as the current directory."""
    monkeypatch.chdir(new_workspace(tmp_path / "ws", empty_store))
    return tmp_path / "ws"


def runs(root: Path) -> list:
    """The runs of the srbench experiment in the store of workspace ``root``, oldest first."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(root / "mlruns"))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return [] if experiment is None else client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def files(folder: Path) -> set[Path]:
    return {path.relative_to(folder) for path in folder.rglob("*") if path.is_file()}


def test_run_is_tagged_and_logged_to_sqlite(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_STAGE", "train@vdsr")
    with mlflow_run("train", {"steps": 3, "arch": {"depth": 20}}, model="vdsr") as tracker:
        tracker.log_metric("psnr_y", 30.0)
        tracker.log_metrics({"ssim_y": 0.9404137484266831, "loss": 0.001641234567})  # shown with 6 significant digits
    [run] = runs(workspace)
    assert run.info.status == "FINISHED" and run.info.run_name == "train@vdsr #1"
    tags = run.data.tags
    assert tags["stage"] == "train@vdsr" and tags["model"] == "vdsr" and tags["launched_by"] == "dvc" and "git_commit" in tags
    assert tags["srbench.host"] == socket.gethostname() and tags["srbench.pid"] == str(os.getpid())
    assert run.data.params["arch.depth"] == "20" and run.data.metrics["psnr_y"] == 30.0
    assert run.data.metrics["ssim_y"] == 0.940414 and run.data.metrics["loss"] == 0.00164123


def test_exception_marks_the_run_failed(workspace: Path) -> None:
    with pytest.raises(RuntimeError):
        with mlflow_run("evaluate", {}, model="srcnn"):
            raise RuntimeError("boom")
    [run] = runs(workspace)
    assert run.info.status == "FAILED" and run.info.run_name == "evaluate@srcnn #1"
    assert run.data.tags["launched_by"] == "cli"


@pytest.mark.parametrize("interruption", [Terminated("SIGTERM"), KeyboardInterrupt()], ids=["sigterm", "ctrl-c"])
def test_interruption_marks_the_run_killed(workspace: Path, interruption: BaseException) -> None:
    with pytest.raises(type(interruption)):
        with mlflow_run("train", {}, model="srcnn"):
            raise interruption
    assert [run.info.status for run in runs(workspace)] == ["KILLED"]


STAGE_SCRIPT = """
import signal
from pipeline.process import stop_on_sigterm
from pipeline.tracking import mlflow_run
stop_on_sigterm()
with mlflow_run("train", {}, model="srcnn"):
    print("running", flush=True)
    signal.pause()
"""


def child_environment() -> dict[str, str]:
    outside = {k: v for k, v in os.environ.items() if not k.startswith("DVC_") and k != "MLFLOW_TRACKING_URI"}
    return {**outside, "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}


@pytest.fixture(scope="module")
def waiting_stages(tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> Iterator[dict[str, tuple[Path, subprocess.Popen]]]:
    """Two processes, each inside an MLflow run opened in a workspace of its own, waiting for a
    signal; started together, as each takes seconds to import torch and MLflow."""
    stages = {}
    for name in ("sigterm", "sigkill"):
        workspace = new_workspace(tmp_path_factory.mktemp(name), empty_store)
        process = subprocess.Popen(
            [sys.executable, "-c", STAGE_SCRIPT], cwd=workspace, env=child_environment(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        stages[name] = (workspace, process)
    for workspace, process in stages.values():
        line = process.stdout.readline()
        if line.strip() != "running":
            process.kill()
            pytest.fail(f"the stage did not start: {line}{process.communicate()[1]}")
    yield stages
    for workspace, process in stages.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sigterm_marks_the_run_killed(waiting_stages: dict[str, tuple[Path, subprocess.Popen]]) -> None:
    workspace, process = waiting_stages["sigterm"]
    assert [run.info.status for run in runs(workspace)] == ["RUNNING"]
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0 and "Terminated: SIGTERM" in stderr
    [run] = runs(workspace)
    assert run.info.status == "KILLED" and run.info.end_time is not None


def test_run_of_a_killed_process_is_marked_killed_by_the_next_run(
    waiting_stages: dict[str, tuple[Path, subprocess.Popen]], monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace, process = waiting_stages["sigkill"]
    process.kill()  # SIGKILL: no handler runs, the run stays RUNNING
    process.wait(timeout=60)
    assert [run.info.status for run in runs(workspace)] == ["RUNNING"]
    monkeypatch.chdir(workspace)
    with mlflow_run("evaluate", {}, model="srcnn"):
        pass
    killed, finished = runs(workspace)
    assert killed.info.status == "KILLED" and killed.data.tags["srbench.pid"] == str(process.pid)
    assert "ended without closing" in killed.data.tags["srbench.killed"]
    assert finished.info.status == "FINISHED"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times come from /proc")
def test_only_runs_whose_process_ended_are_marked_killed(workspace: Path) -> None:
    """A live process keeps its run; a pid reused by another process, or a process that ran
    before a reboot, does not; another host's runs and runs without process tags are left alone."""
    with mlflow_run("prepare", {}):
        pass
    [first] = runs(workspace)
    ours = first.data.tags["srbench.process_start"]  # this process: boot id / pid namespace / start ticks
    boot, namespace, ticks = ours.split("/")
    host, pid = socket.gethostname(), str(os.getpid())
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(workspace / "mlruns"))
    experiment_id = first.info.experiment_id
    cases = {
        "alive": {"srbench.host": host, "srbench.pid": pid, "srbench.process_start": ours},
        "pid reused": {"srbench.host": host, "srbench.pid": pid, "srbench.process_start": f"{boot}/{namespace}/{int(ticks) - 1}"},
        "before a reboot": {"srbench.host": host, "srbench.pid": pid, "srbench.process_start": f"not-{boot}/{namespace}/{ticks}"},
        "other container": {"srbench.host": host, "srbench.pid": "999999999", "srbench.process_start": f"{boot}/0/1"},
        "other host": {"srbench.host": f"not-{host}", "srbench.pid": "999999999"},
        "no process tags": {},
    }
    ids = {name: client.create_run(experiment_id, tags=tags, run_name=name).info.run_id for name, tags in cases.items()}
    with mlflow_run("prepare", {}):
        pass
    status = {name: client.get_run(run_id).info.status for name, run_id in ids.items()}
    assert status == {
        "alive": "RUNNING", "pid reused": "KILLED", "before a reboot": "KILLED",
        "other container": "RUNNING", "other host": "RUNNING", "no process tags": "RUNNING",
    }


def test_copied_or_moved_workspace_logs_into_its_own_mlruns(tmp_path: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = new_workspace(tmp_path / "original", empty_store)
    monkeypatch.chdir(original)
    with mlflow_run("prepare", {}) as tracker:
        tracker.log_text("original", "note.txt")
    before = files(original / "mlruns" / "artifacts")

    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    monkeypatch.chdir(copy)
    with mlflow_run("prepare", {}) as tracker:
        tracker.log_text("copy", "note.txt")
    assert files(original / "mlruns" / "artifacts") == before, "the copy wrote into the original workspace"
    assert len(runs(original)) == 1
    old, new = runs(copy)
    for run in (old, new):  # the copied run too now reads its copied artifacts
        assert run.info.artifact_uri.startswith((copy / "mlruns" / "artifacts").as_uri() + "/")
    assert Path(mlflow.artifacts.download_artifacts(new.info.artifact_uri + "/note.txt", tracking_uri=tracking_uri(copy / "mlruns"))).read_text() == "copy"

    moved = tmp_path / "moved"
    copy.rename(moved)
    monkeypatch.chdir(moved)
    with mlflow_run("prepare", {}) as tracker:
        tracker.log_text("moved", "note.txt")
    assert not copy.exists(), "the moved workspace wrote into its former place"
    assert all(run.info.artifact_uri.startswith((moved / "mlruns" / "artifacts").as_uri() + "/") for run in runs(moved))
    assert len(files(moved / "mlruns" / "artifacts")) == 3


def test_mlflow_tracking_uri_is_used_unchanged(tmp_path: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = new_workspace(tmp_path / "elsewhere", empty_store)
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri(elsewhere / "mlruns"))
    with mlflow_run("prepare", {}):
        pass
    assert [run.info.status for run in runs(elsewhere)] == ["FINISHED"]
    assert not (here / "mlruns").exists()
    assert os.environ["MLFLOW_TRACKING_URI"] == tracking_uri(elsewhere / "mlruns")

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    shutil.copytree(elsewhere / "mlruns", here / "mlruns", ignore=shutil.ignore_patterns("artifacts"))
    with mlflow_run("prepare", {}):
        pass
    assert len(runs(here)) == 2 and len(runs(elsewhere)) == 1
    assert "MLFLOW_TRACKING_URI" not in os.environ, "the workspace's store leaked to child processes"


def test_dvc_root_counts_only_inside_dvc_temporary_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.tracking import workspace

    user, copy, elsewhere = tmp_path / "user", tmp_path / "user/.dvc/tmp/exps/standalone/tmpab12", tmp_path / "elsewhere"
    copy.mkdir(parents=True)
    elsewhere.mkdir()
    monkeypatch.setenv("DVC_ROOT", str(user))
    monkeypatch.chdir(copy)
    assert workspace() == user.resolve()
    monkeypatch.chdir(elsewhere)  # a DVC_ROOT inherited from an outer DVC command
    assert workspace() == elsewhere.resolve()


def test_dvc_exp_run_temp_logs_into_the_users_workspace(tmp_path: Path, empty_store: Path) -> None:
    repo = new_workspace(tmp_path / "repo", empty_store)
    (repo / "mlruns" / ".gitkeep").touch()
    (repo / ".gitignore").write_text("mlruns/*\n!mlruns/.gitkeep\n")
    (repo / "params.yaml").write_text("a: 1\n")
    (repo / "probe.py").write_text(textwrap.dedent("""
        import pathlib, yaml
        from pipeline.tracking import mlflow_run
        a = yaml.safe_load(open("params.yaml"))["a"]
        with mlflow_run("probe", {"a": a}) as tracker:
            tracker.log_text(f"a = {a}", "note.txt")
        pathlib.Path("out.txt").write_text(str(a))
    """))
    (repo / "dvc.yaml").write_text(f"stages:\n  probe:\n    cmd: {sys.executable} probe.py\n    deps: [probe.py]\n    params: [a]\n    outs: [out.txt]\n")
    env = child_environment()
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    for command in ([*git, "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], [*git, "add", "-A"], [*git, "commit", "-qm", "probe"]):
        subprocess.run(command, cwd=repo, env=env, check=True, capture_output=True)
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "run", "--temp", "-n", "probe-exp", "-S", "a=2"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [run] = runs(repo)
    assert run.info.status == "FINISHED" and run.data.params["a"] == "2"
    assert run.data.tags["dvc_exp"] == "probe-exp" and run.data.tags["launched_by"] == "dvc"
    assert run.info.artifact_uri.startswith((repo / "mlruns" / "artifacts").as_uri() + "/")
    notes = list((repo / "mlruns" / "artifacts").rglob("note.txt"))
    assert [note.read_text() for note in notes] == ["a = 2"]


def test_the_same_stage_has_the_same_name_under_dvc_and_by_hand_numbered(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_STAGE", "evaluate-bicubic")  # DVC's name for the stage
    with mlflow_run("evaluate", {}, model="bicubic"):
        pass
    monkeypatch.delenv("DVC_STAGE")
    for _ in range(2):
        with mlflow_run("evaluate", {}, model="bicubic"):
            pass
    with mlflow_run("report", {}):
        pass
    logged = runs(workspace)
    assert [run.info.run_name for run in logged] == ["evaluate@bicubic #1", "evaluate@bicubic #2", "evaluate@bicubic #3", "report #1"]
    assert [run.data.tags["stage"] for run in logged] == ["evaluate-bicubic", "evaluate", "evaluate", "report"]


def test_a_name_taken_at_the_same_moment_is_renamed(workspace: Path) -> None:
    """Two processes that picked `train@vdsr #2` together: the later run takes the next number."""
    from pipeline.tracking import _settle_name

    with mlflow_run("train", {}, model="vdsr"):
        pass
    [first] = runs(workspace)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(workspace / "mlruns"))
    now = int(time.time() * 1000)
    earlier = client.create_run(first.info.experiment_id, run_name="train@vdsr #2", start_time=now)
    later = client.create_run(first.info.experiment_id, run_name="train@vdsr #2", start_time=now + 1)
    for run in (later, earlier):
        _settle_name(client, run, "train@vdsr")
    assert [client.get_run(run.info.run_id).info.run_name for run in (first, earlier, later)] == ["train@vdsr #1", "train@vdsr #2", "train@vdsr #3"]


def test_the_experiment_opens_on_its_runs_with_a_quality_view(workspace: Path) -> None:
    with mlflow_run("prepare", {}):
        pass
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(workspace / "mlruns"))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment.tags[KIND_TAG] == "custom_model_development"  # the UI's model-training pages, not GenAI's
    view = json.loads(experiment.tags[VIEW_TAG])  # the envelope the UI's saved views read
    assert view["name"] == "PSNR / SSIM" and isinstance(view["createdAt"], int)
    columns = json.loads(view["state"])["selectedColumns"]
    assert {"attributes.`Models`", "metrics.`psnr_y`", "metrics.`ssim_y`"} <= set(columns)
    assert not any("valid_" in column for column in columns)  # one column per quantity for every run kind
    assert (json.loads(view["state"])["orderByKey"], json.loads(view["state"])["orderByAsc"]) == ("metrics.`psnr_y`", False)  # ranked

    updated = experiment.last_update_time
    with mlflow_run("prepare", {}):  # nothing to change: nothing written
        pass
    assert client.get_experiment_by_name(EXPERIMENT).last_update_time == updated
    client.set_experiment_tag(experiment.experiment_id, KIND_TAG, "genai_development")  # a user's choice, in the UI
    client.set_experiment_tag(experiment.experiment_id, VIEW_TAG, "{}")  # a damaged view: srbench's own
    with mlflow_run("prepare", {}):
        pass
    tags = client.get_experiment_by_name(EXPERIMENT).tags
    assert tags[KIND_TAG] == "genai_development" and tags[VIEW_TAG] == experiment_tags()[VIEW_TAG]


def git_repository(root: Path) -> None:
    """A repository whose dvc.lock lists outputs: a folder, a cached model, uncached metrics."""
    lock = {"schema": "2.0", "stages": {
        "prepare": {"cmd": "prepare", "outs": [{"path": "data/prepared", "md5": "a.dir"}]},
        "train@m": {"cmd": "train m", "outs": [{"path": "models/m.json", "md5": "b"}, {"path": "metrics/train/m.json", "md5": "c"}]},
    }}
    for path, text in {
        "dvc.lock": yaml.safe_dump(lock), "code.py": "x = 1\n", "data/prepared/meta.json": "{}",
        "models/m.json": "{}", "metrics/train/m.json": "{}", "plots/train/m.csv": "step\n", "models/.gitignore": "/m.pt\n",
    }.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    for command in ([*git, "init", "-q"], [*git, "add", "-A"], [*git, "commit", "-qm", "start"]):
        subprocess.run(command, cwd=root, check=True, capture_output=True)


def test_git_commit_is_dirty_only_for_changes_dvc_did_not_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    monkeypatch.chdir(tmp_path)
    assert git_commit() == "unknown"
    git_repository(root)
    monkeypatch.chdir(root / "metrics")  # from a subfolder too
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    assert git_commit() == head
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    del lock["stages"]["train@m"]  # dvc.lock rewritten; train@m's outputs stay listed in HEAD's
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    for path in ("data/prepared/meta.json", "models/m.json", "metrics/train/m.json"):
        (root / path).write_text('{"rewritten": 1}')
    (root / "models/.gitignore").write_text("/m.pt\n/m.json\n")  # DVC adds a new output's line
    assert git_commit() == head, "what dvc repro writes made the run dirty"
    (root / "plots/train/m.csv").write_text("step\n1\n")  # no stage's output
    assert git_commit() == f"{head}-dirty"
    subprocess.run(["git", "checkout", "-q", "plots/train/m.csv"], cwd=root, check=True)
    subprocess.run(["git", "mv", "code.py", "renamed.py"], cwd=root, check=True)
    assert git_commit() == f"{head}-dirty"


def test_log_dataset_names_the_folder_its_place_and_digest(workspace: Path) -> None:
    data = workspace / "data" / "prepared"
    data.mkdir(parents=True)
    with mlflow_run("train", {}, model="srcnn") as tracker:
        log_dataset(tracker, Path("data/prepared"), "0123456789abcdef", "training")
        with pytest.raises(ValueError, match="1 to 36 characters"):
            log_dataset(tracker, Path("data/prepared"), "f" * 37, "training")
    [dataset_input] = runs(workspace)[0].inputs.dataset_inputs
    assert dataset_input.dataset.name == "data/prepared" and dataset_input.dataset.digest == "0123456789abcdef"
    assert json.loads(dataset_input.dataset.source) == {"uri": data.resolve().as_uri()}
    assert {tag.key: tag.value for tag in dataset_input.tags}["mlflow.data.context"] == "training"


def test_srbench_ui_serves_the_workspace_store_and_prints_the_quality_view(workspace: Path, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "ui.log"
    with open(log, "w") as stderr:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "srbench"), "ui", "--port", str(port), "--", "--workers", "1"],
            cwd=workspace, env=child_environment(), stderr=stderr,
        )
    try:
        api = f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/get-by-name?experiment_name={EXPERIMENT}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(api, timeout=5) as response:
                    experiment = json.load(response)["experiment"]
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
        assert {tag["key"]: tag["value"] for tag in experiment["tags"]} == experiment_tags()
        assert experiment["artifact_location"] == (workspace / "mlruns" / "artifacts").resolve().as_uri()
        [line] = [line for line in log.read_text().splitlines() if "PSNR / SSIM columns" in line]
        view = f"http://127.0.0.1:{port}/#/experiments/{experiment['experiment_id']}/runs?viewStateShareKey=srbench&workflowType=machine_learning"
        assert line.endswith(f": {view}")
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert not (workspace / "mlflow.db").exists() and not (workspace / "mlartifacts").exists()


def test_a_plain_mlflow_ui_database_at_the_root_is_ignored_by_git() -> None:
    assert subprocess.run(["git", "check-ignore", "-q", "mlflow.db"], cwd=REPO).returncode == 0


def test_params_checks_name_file_key_and_value(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  log_every: -3\n  budget: 0\n  device: cpu\n")
    params = Params(path)
    with pytest.raises(ParamError, match=r"params.yaml: train.log_every = -3: must be >= 1"):
        params.integer("train.log_every", minimum=1)
    with pytest.raises(ParamError, match="train.budget = 0: must be a positive number"):
        params.positive_float("train.budget")
    with pytest.raises(ParamError, match="missing key train.nproc"):
        params.integer("train.nproc")
    path.write_text("train: [unclosed\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        Params(path)
