"""A trained model as its users find it: registered in MLflow's Model Registry (a new version of
`srbench-MODEL` per training, with a signature, a description, tags and an alias per profile),
loadable and usable in a fresh process where srbench is not installed, also after the workspace
was copied and the original deleted; honest params and the data set in its run; an evaluation
linked to the version it scored; its model card, numbers-only summary and curves with the images
seen."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from pipeline.tracking import EXPERIMENT, WEIGHTS_TAG, tracking_uri, use_store
from srbench.files import file_digest

REPO = Path(__file__).resolve().parents[1]
STEPS, BATCH = 4, 8
CARD_KEYS = {"model", "seed", "scale", "arch", "channels", "rgb_permutation", "device", "device_name", "precision", "threads", "world_size", "torch", "steps", "batch_size"}


def srbench(*args: str) -> None:
    """Run the `srbench` entry point in this process (a subprocess takes seconds to import torch)."""
    from pipeline import cli

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "setup_logging", lambda: None)
        patch.setattr(cli, "stop_on_sigterm", lambda: None)
        patch.setattr(sys, "argv", ["srbench", *args])
        with pytest.raises(SystemExit) as exited:
            cli.main()
    assert exited.value.code in (0, None)


EXPERIMENT_NAME = "bold-exp"  # the second training's, as `dvc exp run` names one


@pytest.fixture(scope="module")
def trained_twice(prepared_x2: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A workspace where a tiny SRCNN was trained twice, asking for bf16 on a CPU: first with the
    params of its profile `tiny`, then in a DVC experiment that edited a param, then evaluated."""
    workspace = tmp_path_factory.mktemp("registry")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"] |= {"precision": "bf16", "device": "cpu", "log_every": 2, "validations": 1, "checkpoint_every": 100}
    params["srcnn"] |= {"steps": STEPS, "batch_size": BATCH, "patch_size": 16, "optimizer": {"name": "adam", "lr": 1e-3}}
    params["srcnn"]["arch"] |= {"n1": 8, "n2": 4, "f1": 3, "f2": 1, "f3": 3}
    (workspace / "profiles").mkdir()
    (workspace / "profiles" / "tiny.yaml").write_text(yaml.safe_dump(params))
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    saved_cwd, saved_uri = Path.cwd(), os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.chdir(workspace)
    try:
        srbench("train", "srcnn", "--data", str(prepared_x2))
        params["train"]["checkpoint_every"] = 50  # an edit that changes no weight
        (workspace / "params.yaml").write_text(yaml.safe_dump(params))
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DVC_EXP_NAME", EXPERIMENT_NAME)
            srbench("train", "srcnn", "--data", str(prepared_x2))
        srbench("evaluate", "srcnn", "--data", str(prepared_x2))
    finally:
        os.chdir(saved_cwd)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        if saved_uri is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved_uri
    yield workspace


def client_of(workspace: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=tracking_uri(workspace / "mlruns"), registry_uri=tracking_uri(workspace / "mlruns"))


def test_each_training_is_a_new_registered_version_with_a_signature(trained_twice: Path) -> None:
    client = client_of(trained_twice)
    versions = sorted(client.search_model_versions("name = 'srbench-srcnn'"), key=lambda version: int(version.version))
    assert [int(version.version) for version in versions] == [1, 2]
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id], "tags.stage = 'train'", order_by=["attributes.start_time ASC"])
    assert [version.run_id for version in versions] == [run.info.run_id for run in runs]
    assert [run.info.run_name for run in runs] == ["train@srcnn #1", "train@srcnn #2"]

    model = client.get_logged_model(versions[1].source.removeprefix("models:/"))
    assert model.name == "srcnn" and model.source_run_id == runs[1].info.run_id
    info = mlflow.models.Model.load(mlflow.artifacts.download_artifacts(f"{model.artifact_location}/MLmodel"))
    tensor = {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3, -1, -1]}}
    assert info.signature.to_dict()["inputs"] == json.dumps([tensor]) and info.signature.to_dict()["outputs"] == json.dumps([tensor])
    requirements = Path(mlflow.artifacts.download_artifacts(f"{model.artifact_location}/requirements.txt")).read_text().split()
    assert {line.split("==")[0] for line in requirements} >= {"torch", "numpy"}


def test_each_version_says_what_it_is_and_the_profile_alias_stays_on_the_profiles_version(trained_twice: Path) -> None:
    client = client_of(trained_twice)
    first, second = (client.get_model_version("srbench-srcnn", str(number)) for number in (1, 2))
    digest = file_digest(trained_twice / "models" / "seed0" / "srcnn.pt")
    assert first.tags == {"profile": "tiny", "scale": "2", "seed": "0", "git_commit": "unknown", WEIGHTS_TAG: digest}  # no git here
    assert second.tags == {"profile": "none (params edited)", "scale": "2", "seed": "0", "git_commit": "unknown", "dvc_exp": EXPERIMENT_NAME, WEIGHTS_TAG: digest}
    assert int(client.get_model_version_by_alias("srbench-srcnn", "tiny").version) == 1  # the experiment moved no alias
    psnr = client.get_run(second.run_id).data.metrics["psnr_y"]
    assert second.description.startswith("srcnn x2 (Dong et al.") and f"{STEPS} steps of {BATCH} crops of 16 px" in second.description
    assert f"Y-PSNR {psnr:.3f} dB" in second.description and "valid" in second.description


def test_an_evaluation_run_names_the_version_it_scored_and_ranks_in_the_trainings_column(trained_twice: Path) -> None:
    client = client_of(trained_twice)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    [evaluation] = (client.get_run(run.info.run_id) for run in client.search_runs([experiment], "tags.stage = 'evaluate'"))
    [training] = client.search_runs([experiment], "attributes.run_name = 'train@srcnn #2'")
    version = client.get_model_version("srbench-srcnn", "2")  # the newest of the two with these weights
    model_id = version.source.removeprefix("models:/")
    assert evaluation.data.tags["model_version"] == "srbench-srcnn/2"
    assert [model.model_id for model in evaluation.inputs.model_inputs] == [model_id]  # the UI's Models column
    assert {"psnr_y", "ssim_y", "megapixels_per_second"} <= set(evaluation.data.metrics) and not any(key.startswith("valid_") for key in evaluation.data.metrics)
    assert evaluation.data.metrics["psnr_y"] == pytest.approx(training.data.metrics["psnr_y"], abs=1e-3)  # one column, the same split
    scores = {(metric.key, metric.run_id, metric.dataset_name) for metric in client.get_logged_model(model_id).metrics}
    assert evaluation.data.params["test_sets"] == "valid"
    [valid] = {dataset.dataset.name for dataset in evaluation.inputs.dataset_inputs}
    assert valid.endswith("/valid") and valid in {dataset.dataset.name for dataset in training.inputs.dataset_inputs}
    assert {("psnr_y", evaluation.info.run_id, valid), ("psnr_y", training.info.run_id, valid)} <= scores  # the version's page lists both


WITHOUT_SRBENCH = """
import importlib.util, sys
sys.path.append(PURELIB)  # site-packages without its .pth files: no editable srbench
assert importlib.util.find_spec("srbench") is None, "srbench is importable"
import mlflow, numpy as np
mlflow.set_tracking_uri(STORE)
"""


def run_without_srbench(script: str, store: Path, cwd: Path, timeout: float, **constants: str) -> subprocess.CompletedProcess:
    """``script`` in a fresh Python where srbench cannot be imported (no site-packages .pth files,
    no PYTHONPATH), with MLflow pointed at the workspace store ``store`` and ``constants`` as globals."""
    constants = {"PURELIB": sysconfig.get_paths()["purelib"], "STORE": tracking_uri(store), **constants}
    source = "".join(f"{name} = {value!r}\n" for name, value in constants.items()) + textwrap.dedent(WITHOUT_SRBENCH) + textwrap.dedent(script)
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    return subprocess.run([sys.executable, "-S", "-c", source], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


LOAD_EVERY_VERSION = """
client = mlflow.MlflowClient()
image = np.linspace(0, 1, 3 * 12 * 12, dtype=np.float32).reshape(1, 3, 12, 12)
for registered in client.search_registered_models():
    for version in client.search_model_versions(f"name = '{registered.name}'"):
        print(version.name, version.version, client.get_model_version_download_uri(version.name, version.version))
        assert mlflow.pyfunc.load_model(f"models:/{version.name}/{version.version}").predict(image).shape == (1, 3, 24, 24)
"""


def test_registry_versions_load_from_a_copy_after_the_original_is_deleted(trained_twice: Path, tmp_path: Path) -> None:
    """Copy a workspace, delete the original: once any srbench stage (or `srbench ui`) has run in
    the copy, plain MLflow loads every registered version from the copy's own files."""
    original = tmp_path / "original"
    shutil.copytree(trained_twice, original)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(original)
        use_store(mlflow)  # the original's own locations (it is itself a copy of the fixture's)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    shutil.rmtree(original)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(copy)
        use_store(mlflow)  # what every stage and `srbench ui` do first
    os.environ.pop("MLFLOW_TRACKING_URI", None)

    result = run_without_srbench(LOAD_EVERY_VERSION, copy / "mlruns", tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = result.stdout.splitlines()
    assert len(loaded) == 2 and all(line.split()[2].startswith((copy / "mlruns" / "artifacts").as_uri()) for line in loaded), loaded


def test_the_run_logs_the_precision_that_ran_the_machine_and_the_data(trained_twice: Path, prepared_x2: Path) -> None:
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(trained_twice / "mlruns"))
    run = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id], "tags.stage = 'train'", max_results=1)[0]
    params = run.data.params
    assert params["precision"] == "fp32" and params["precision_requested"] == "bf16"  # bf16 runs on CUDA only
    assert params["device"] == "cpu" and params["device_requested"] == "cpu" and params["world_size"] == "1"
    assert params["device_name"] == params["cpu"] and params["device_name"]
    assert int(params["torch_threads"]) >= 1
    training, validation = sorted(run.inputs.dataset_inputs, key=lambda found: found.dataset.name)
    dataset = training.dataset
    assert dataset.name == str(prepared_x2) and len(dataset.digest) == 16
    assert json.loads(dataset.source) == {"uri": prepared_x2.resolve().as_uri()}
    assert {tag.key: tag.value for tag in training.tags}["mlflow.data.context"] == "training"
    assert validation.dataset.name == str(prepared_x2 / "valid") and {tag.key: tag.value for tag in validation.tags}["mlflow.data.context"] == "validation"


def test_card_summary_and_curves(trained_twice: Path) -> None:
    card = json.loads((trained_twice / "models" / "seed0" / "srcnn.json").read_text())
    assert set(card) == CARD_KEYS
    assert card["device"] == "cpu" and card["precision"] == "fp32" and card["device_name"] and card["world_size"] == 1
    assert card["steps"] == STEPS and card["batch_size"] == BATCH and card["scale"] == 2 and card["arch"]["n1"] == 8
    assert card["channels"] == "y" and card["rgb_permutation"] is False  # the quick profile trains SRCNN on luma
    summary = json.loads((trained_twice / "metrics" / "train" / "seed0" / "srcnn.json").read_text())
    assert all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in summary.values()), summary
    lines = (trained_twice / "plots" / "train" / "seed0" / "srcnn.csv").read_text().splitlines()
    assert lines[0].startswith("step,seconds,images,loss,lr,val_psnr_y")
    rows = [line.split(",") for line in lines[1:]]
    assert [(int(row[0]), int(row[2])) for row in rows] == [(2, 2 * BATCH), (4, 4 * BATCH), (4, 4 * BATCH)]  # losses, then validation


LOAD_AND_UPSCALE = """
model = mlflow.pyfunc.load_model("models:/srbench-srcnn/latest")
print("srbench from", sys.modules["srbench"].__file__)
np.save(OUT, model.predict(np.load(IN)))
"""


def test_the_registered_model_upscales_where_srbench_is_not_installed(trained_twice: Path, tmp_path: Path) -> None:
    import torch
    from skimage import data

    from srbench.models import load_model

    image = np.ascontiguousarray(data.astronaut()[200:232, 180:220].transpose(2, 0, 1)[None], dtype=np.float32) / 255
    np.save(tmp_path / "in.npy", image)
    network, _ = load_model(trained_twice / "models" / "seed0" / "srcnn.pt", torch.device("cpu"))
    with torch.no_grad():
        expected = network.eval()(torch.from_numpy(image)).numpy()

    result = run_without_srbench(LOAD_AND_UPSCALE, trained_twice / "mlruns", tmp_path, timeout=120, IN=str(tmp_path / "in.npy"), OUT=str(tmp_path / "out.npy"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "/code/srbench/__init__.py" in result.stdout  # the copy of srbench logged with the model

    upscaled = np.load(tmp_path / "out.npy")
    assert upscaled.shape == (1, 3, 64, 80) and upscaled.dtype == np.float32
    assert np.isfinite(upscaled).all()
    np.testing.assert_allclose(upscaled, expected, atol=1e-5)  # the trained network, to float rounding
