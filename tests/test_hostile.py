"""Issue 22's hostile pass, one test per case (the case number in each docstring): what used to
lose data, lie with exit 0, hang or print a traceback is now one line and a non-zero exit."""

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from srbench.images import write_png
from srbench.models import build_model, save_model

REPO = Path(__file__).resolve().parents[1]
Run = Callable[..., tuple[int, str]]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with the repository's params.yaml, a folder of two photographs and a small
    VDSR at x2; the current directory."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    rng = np.random.default_rng(0)
    for name in ("one", "two"):
        write_png(tmp_path / "photos" / f"{name}.png", rng.integers(0, 256, size=(32, 40, 3), dtype=np.uint8))
    torch.manual_seed(0)
    arch = {"depth": 3, "num_filters": 8}
    save_model(tmp_path / "vdsr.pt", build_model("vdsr", 2, arch), "vdsr", 2, arch)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_line(status: int, stderr: str, expected_status: int = 2) -> str:
    """The one error line of a refused command (and no traceback)."""
    errors = [line for line in stderr.splitlines() if line.startswith("srbench: error:")]
    assert status == expected_status and len(errors) == 1 and "Traceback" not in stderr, (status, stderr[-2000:])
    return errors[0]


def test_weights_of_another_model_are_refused(workdir: Path, srbench_here: Run) -> None:
    """Case 3: `evaluate srcnn --weights models/vdsr.pt` logged VDSR's score as srcnn's, rc 0."""
    for command in (["evaluate", "srcnn", "--hr-dir", "photos", "--out", "scores"], ["upscale", "--model", "srcnn", "photos/one.png", "--out", "up"]):
        error = one_line(*srbench_here(*command, "--weights", "vdsr.pt"))
        assert error.endswith("vdsr.pt: holds a vdsr model, not srcnn (name the model the file holds)")
    assert not (workdir / "scores").exists() and not (workdir / "up").exists() and not (workdir / "mlruns").exists()


def test_non_finite_weights_are_refused_before_any_inference(workdir: Path, srbench_here: Run) -> None:
    """Case 9: all-NaN weights hung `upscale` (the receptive-field probe kept doubling) and gave
    `evaluate` black images with rc 0."""
    arch = {"depth": 3, "num_filters": 8}
    model = build_model("vdsr", 2, arch)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(float("nan"))
    save_model(workdir / "nan.pt", model, "vdsr", 2, arch)
    for command in (["evaluate", "vdsr", "--hr-dir", "photos", "--out", "scores"], ["upscale", "--model", "vdsr", "photos/one.png", "--out", "up", "--tile", "16"]):
        error = one_line(*srbench_here(*command, "--weights", "nan.pt"))
        assert "nan.pt: " in error and "holds NaN or infinite weights" in error
    assert not (workdir / "scores").exists() and not (workdir / "up").exists()


def test_a_folder_srbench_did_not_make_is_never_replaced(workdir: Path, srbench_here: Run) -> None:
    """Case 1: `--out` of download, prepare and `evaluate --hr-dir` replaced an existing folder
    whole (`mkdir x; touch x/keep; srbench prepare --out x`: rc 0, x/keep gone)."""
    (workdir / "x").mkdir()
    (workdir / "x" / "keep").write_text("mine")
    for command in (["download"], ["prepare"], ["evaluate", "vdsr", "--weights", "vdsr.pt", "--hr-dir", "photos"]):
        error = one_line(*srbench_here(*command, "--out", "x"))
        assert error.endswith("--out x: a folder of other files (no " + {"download": "dataset.json", "prepare": "meta.json"}.get(command[0], "evaluation.json")
                              + ": srbench did not make it); --out is replaced whole, so choose a new or empty folder")
    assert [path.name for path in (workdir / "x").iterdir()] == ["keep"]
    # a folder srbench made for the same command is replaced, and an empty one is filled
    (workdir / "empty").mkdir()
    for out in ("mine", "mine", "empty"):
        status, stderr = srbench_here("evaluate", "vdsr", "--weights", "vdsr.pt", "--hr-dir", "photos", "--out", out)
        assert status == 0, stderr
    assert (workdir / "empty" / "evaluation.json").is_file()


def test_another_stages_folder_is_refused_and_a_linked_one_followed(workdir: Path, srbench_here: Run) -> None:
    """Case 2: `prepare --out data/raw` (or `download --out data/prepared`) overwrote the pipeline's
    own folders, rc 0. Case 17: a symlinked data/raw was silently replaced by a folder."""
    shutil.copy(REPO / "dvc.lock", workdir / "dvc.lock")
    for command, out, owner in (("prepare", "data/raw", "download"), ("download", "data/prepared", "prepare"), ("download", "models", "train")):
        error = one_line(*srbench_here(command, "--out", out))
        assert f"--out {out}: overlaps " in error and f"the DVC pipeline's stage {owner}" in error
    elsewhere = workdir / "big-disk" / "raw"
    elsewhere.mkdir(parents=True)
    (workdir / "data").mkdir(exist_ok=True)
    (workdir / "data" / "raw").symlink_to(elsewhere)
    status, stderr = srbench_here("download")
    assert status == 0, stderr
    assert (workdir / "data" / "raw").is_symlink() and (elsewhere / "dataset.json").is_file() and (elsewhere / "train" / "HR").is_dir()


def test_check_refuses_bad_sizes_and_pipeline_folders_before_any_work(workdir: Path, srbench_here: Run) -> None:
    """Case 15: `check --batch-size 0` was reported as divergence, -4 a ValueError traceback, and
    `check --out data/prepared` wrote into a DVC output."""
    shutil.copy(REPO / "dvc.lock", workdir / "dvc.lock")
    for option, value, minimum in (("--batch-size", "0", 1), ("--batch-size", "-4", 1), ("--patch-size", "2", 4)):
        assert one_line(*srbench_here("check", "srcnn", option, value)).endswith(f"{option} {value}: must be >= {minimum}")
    assert "--out data/prepared: overlaps data/prepared" in one_line(*srbench_here("check", "srcnn", "--out", "data/prepared"))


def test_any_legal_workspace_path_keeps_its_runs_in_its_own_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Case 4: in a workspace under `a?b/`, the runs went to a stray database at `a` (SQLAlchemy
    reads `?` as a query); `%41` would have been decoded to `A`."""
    from pipeline.tracking import EXPERIMENT, mlflow_run, tracking_uri

    odd = tmp_path / "a?b #c%41 é" / "r"
    odd.mkdir(parents=True)
    monkeypatch.chdir(odd)
    with mlflow_run("prepare", {}):
        pass
    assert [path.name for path in tmp_path.iterdir()] == ["a?b #c%41 é"] and (odd / "mlruns" / "mlflow.db").is_file()
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri(odd / "mlruns"))
    [run] = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith((odd / "mlruns").as_uri())


def test_a_read_only_place_exits_1_and_a_read_only_store_is_one_line(workdir: Path, srbench_here: Run, read_only_dir: Path) -> None:
    """Case 13: a read-only mlruns/mlflow.db gave a 232-line SQLAlchemy traceback. Case 17: a
    read-only models/, mlruns/ or data/ exited 2, where docs/stages.md says 1 (the system refused)."""
    (workdir / "mlruns").symlink_to(read_only_dir)
    assert one_line(*srbench_here("download"), expected_status=1).endswith("mlruns: cannot write here (Read-only file system)")
    (workdir / "mlruns").unlink()
    from pipeline.tracking import mlflow_run

    with mlflow_run("prepare", {}):  # the store's tables
        pass
    db = workdir / "mlruns" / "mlflow.db"
    import subprocess

    subprocess.run(["mount", "--bind", "-o", "ro", str(db), str(db)], check=True)
    try:
        assert one_line(*srbench_here("download"), expected_status=1).endswith("mlflow.db: cannot write the MLflow store (read-only)")
    finally:
        subprocess.run(["umount", "-l", str(db)], check=False)


def test_a_subfolder_of_a_workspace_is_refused(workdir: Path, srbench_here: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Case 17: `train` run from a subdirectory made its own models/, mlruns/ and locks there."""
    shutil.copy(REPO / "dvc.yaml", workdir / "dvc.yaml")
    (workdir / "notebooks").mkdir()
    monkeypatch.chdir(workdir / "notebooks")
    error = one_line(*srbench_here("download", "--params", "../params.yaml"))
    assert error.endswith(f"{workdir / 'notebooks'}: a subfolder of the workspace {workdir}; run srbench there (its runs, locks and outputs are the workspace's)")
    assert list((workdir / "notebooks").iterdir()) == []


def test_a_profile_name_is_a_profile_not_a_path(workdir: Path, srbench_here: Run) -> None:
    """Case 17: `srbench profile ../params` accepted a name outside profiles/."""
    shutil.copytree(REPO / "profiles", workdir / "profiles")
    before = (workdir / "params.yaml").read_text()
    assert one_line(*srbench_here("profile", "../params")).endswith("profiles/../params.yaml: no such profile (available: paper, quick)")
    assert (workdir / "params.yaml").read_text() == before


def tiny_params(workdir: Path, **prepare: int) -> None:
    """A tiny SRCNN that trains in a second, and ``prepare`` settings."""
    import yaml

    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["prepare"] |= {"workers": 1, **prepare}
    params["train"] |= {"log_every": 2, "validations": 1, "device": "cpu"}
    params["srcnn"] |= {"steps": 2, "batch_size": 4, "patch_size": 16, "arch": {"n1": 8, "n2": 4, "f1": 3, "f2": 1, "f3": 3}}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


def test_data_is_never_replaced_under_a_training_that_reads_it(workdir: Path, srbench_here: Run, raw_samples: Path, prepared_x2: Path) -> None:
    """Case 5: `prepare` at x4 while `train srcnn` at x2 ran: both rc 0, a x2 model on x4 data."""
    from pipeline.process import data_lock

    tiny_params(workdir)
    with data_lock(Path("data/prepared")):  # a training reading data/prepared
        error = one_line(*srbench_here("prepare", "--raw", str(raw_samples)))
    assert "a training reading data/prepared is already running in this workspace" in error and not (workdir / "data" / "prepared").exists()
    with data_lock(prepared_x2, "srbench prepare"):  # prepare replacing the data a training would read
        error = one_line(*srbench_here("train", "srcnn", "--data", str(prepared_x2)))
    assert "srbench prepare (pid" in error and not list((workdir / "models").rglob("*.pt"))


def test_a_full_disk_is_one_line_and_leaves_nothing(workdir: Path, srbench_here: Run, raw_samples: Path) -> None:
    """Case 8: `prepare` on a nearly full file system died of SIGBUS ("Bus error", rc 135, no
    message), left its staging folder and its MLflow run RUNNING."""
    import subprocess

    from test_train_safety import run_statuses

    tiny_params(workdir, patch_size=16, stride=2)  # a 3.4 MB patch store: more than the file system holds
    (workdir / "data").mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(workdir / "data")], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()})")
    try:
        error = one_line(*srbench_here("prepare", "--raw", str(raw_samples)), expected_status=1)
        assert error.endswith("train_hr.npy: No space left on device") and list((workdir / "data").iterdir()) == []
        assert run_statuses(workdir) == ["FAILED"]
    finally:
        subprocess.run(["umount", "-l", str(workdir / "data")], check=False)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncated", "train_hr.npy: not a readable patch store (mmap length is greater than file size); run srbench prepare again"),
        ("short LR store", "train_lr.npy: uint8 patches of shape (89, 16, 16, 3), but "),
        ("meta.json scale 5", "meta.json: scale 5, patch_size 32, train_patches 90: not what srbench prepare writes"),
        ("meta.json not JSON", "meta.json: not the metadata of srbench prepare ("),
    ],
)
def test_damaged_prepared_data_is_one_line_before_any_run(
    workdir: Path, srbench_here: Run, prepared_x2: Path, damage: str, message: str
) -> None:
    """Case 14: a truncated train_hr.npy, a bad meta.json or an LR store shorter than the HR one
    gave tracebacks."""
    import json

    data = workdir / "prepared"
    shutil.copytree(prepared_x2, data)
    meta = json.loads((data / "meta.json").read_text())
    if damage == "truncated":
        with open(data / "train_hr.npy", "r+b") as file:
            file.truncate((data / "train_hr.npy").stat().st_size // 2)
    elif damage == "short LR store":
        np.save(data / "train_lr.npy", np.load(data / "train_lr.npy")[:-1])
    elif damage == "meta.json scale 5":
        (data / "meta.json").write_text(json.dumps(meta | {"scale": 5}))
    else:
        (data / "meta.json").write_text("{scale: 2")
    tiny_params(workdir)
    error = one_line(*srbench_here("train", "srcnn", "--data", str(data)))
    assert message in error
    assert not (workdir / "mlruns").exists()


def test_a_training_image_too_small_for_a_patch_is_named(raw_samples: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Case 17: a 10 x 10 image in the training split silently gave 0 patches."""
    from srbench.data import check_raw

    raw = tmp_path / "raw"
    shutil.copytree(raw_samples, raw)
    write_png(raw / "train" / "HR" / "tiny.png", np.zeros((10, 10, 3), np.uint8))
    checked = check_raw(raw, 2, 32, 16)
    assert 0 in checked.patch_counts
    assert "1 training image(s) smaller than prepare.patch_size=32 px on a side give no patch: tiny.png" in caplog.text


def test_a_training_that_cannot_fit_in_memory_is_refused_before_allocating(workdir: Path, srbench_here: Run, prepared_x2: Path) -> None:
    """Case 10: `srcnn.arch.n1: 100000` took 14 GB and made no step in 2 minutes (the bound now
    refuses it: tests/test_models.py); within the bounds, a batch that cannot fit is refused from
    an estimate made on the meta device, before anything is allocated."""
    import yaml

    from srbench.inference import available_memory
    from srbench.models import training_memory

    arch = {"n1": 64, "n2": 32, "f1": 9, "f2": 5, "f3": 5}
    small, large = (training_memory("srcnn", 2, arch, "y", batch, 32) for batch in (16, 32))
    weights = 4 * 4 * sum(parameter.numel() for parameter in build_model("srcnn", 2, arch, "y").parameters())
    assert large - small == small - weights == 4 * 2 * 16 * 16 * 16 * (64 + 32 + 1)  # 16 more crops, 16 x 16 LR px, 97 maps
    tiny_params(workdir)
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["srcnn"] |= {"batch_size": 4_000_000, "patch_size": 32}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    error = one_line(*srbench_here("train", "srcnn", "--data", str(prepared_x2)))
    free = available_memory(torch.device("cpu"))
    assert "srcnn: a training step needs about " in error and "GB free on cpu; lower srcnn.batch_size, patch_size or arch" in error
    assert free is not None and not (workdir / "mlruns").exists()
