"""A trained model as its users find it: registered in MLflow's Model Registry (a new version of
`srbench-MODEL` per training, with a signature), loadable and usable in a fresh process where
srbench is not installed; honest params and the data set in its run; its model card, numbers-only
summary and curves with the images seen."""

import json
import os
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

from pipeline.tracking import EXPERIMENT, tracking_uri

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


@pytest.fixture(scope="module")
def trained_twice(prepared_x2: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A workspace where a tiny SRCNN was trained twice, asking for bf16 on a CPU."""
    workspace = tmp_path_factory.mktemp("registry")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"] |= {"precision": "bf16", "device": "cpu", "log_every": 2, "validations": 1, "checkpoint_every": 100}
    params["srcnn"] |= {"steps": STEPS, "batch_size": BATCH, "patch_size": 16, "optimizer": {"name": "adam", "lr": 1e-3}}
    params["srcnn"]["arch"] |= {"n1": 8, "n2": 4, "f1": 3, "f2": 1, "f3": 3}
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    saved_cwd, saved_uri = Path.cwd(), os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.chdir(workspace)
    try:
        for _ in range(2):
            srbench("train", "srcnn", "--data", str(prepared_x2))
    finally:
        os.chdir(saved_cwd)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        if saved_uri is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved_uri
    yield workspace


def test_each_training_is_a_new_registered_version_with_a_signature(trained_twice: Path) -> None:
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(trained_twice / "mlruns"), registry_uri=tracking_uri(trained_twice / "mlruns"))
    versions = sorted(client.search_model_versions("name = 'srbench-srcnn'"), key=lambda version: int(version.version))
    assert [int(version.version) for version in versions] == [1, 2]
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id], order_by=["attributes.start_time ASC"])
    assert [version.run_id for version in versions] == [run.info.run_id for run in runs]
    assert [run.info.run_name for run in runs] == ["train@srcnn #1", "train@srcnn #2"]

    model = client.get_logged_model(versions[1].source.removeprefix("models:/"))
    assert model.name == "srcnn" and model.source_run_id == runs[1].info.run_id
    info = mlflow.models.Model.load(mlflow.artifacts.download_artifacts(f"{model.artifact_location}/MLmodel"))
    tensor = {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3, -1, -1]}}
    assert info.signature.to_dict()["inputs"] == json.dumps([tensor]) and info.signature.to_dict()["outputs"] == json.dumps([tensor])
    requirements = Path(mlflow.artifacts.download_artifacts(f"{model.artifact_location}/requirements.txt")).read_text().split()
    assert {line.split("==")[0] for line in requirements} >= {"torch", "numpy"}


def test_the_run_logs_the_precision_that_ran_the_machine_and_the_data(trained_twice: Path, prepared_x2: Path) -> None:
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(trained_twice / "mlruns"))
    run = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id], max_results=1)[0]
    params = run.data.params
    assert params["precision"] == "fp32" and params["precision_requested"] == "bf16"  # bf16 runs on CUDA only
    assert params["device"] == "cpu" and params["device_requested"] == "cpu" and params["world_size"] == "1"
    assert params["device_name"] == params["cpu"] and params["device_name"]
    assert int(params["torch_threads"]) >= 1
    [dataset_input] = run.inputs.dataset_inputs
    dataset = dataset_input.dataset
    assert dataset.name == str(prepared_x2) and len(dataset.digest) == 16
    assert json.loads(dataset.source) == {"uri": prepared_x2.resolve().as_uri()}
    assert {tag.key: tag.value for tag in dataset_input.tags}["mlflow.data.context"] == "training"


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
import importlib.util, sys
sys.path.append(PURELIB)  # site-packages without its .pth files: no editable srbench
assert importlib.util.find_spec("srbench") is None, "srbench is importable"
import mlflow, numpy as np
mlflow.set_tracking_uri(STORE)
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

    constants = {"PURELIB": sysconfig.get_paths()["purelib"], "STORE": tracking_uri(trained_twice / "mlruns"), "IN": str(tmp_path / "in.npy"), "OUT": str(tmp_path / "out.npy")}
    script = "".join(f"{name} = {value!r}\n" for name, value in constants.items()) + textwrap.dedent(LOAD_AND_UPSCALE)
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    result = subprocess.run([sys.executable, "-S", "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "/code/srbench/__init__.py" in result.stdout  # the copy of srbench logged with the model

    upscaled = np.load(tmp_path / "out.npy")
    assert upscaled.shape == (1, 3, 64, 80) and upscaled.dtype == np.float32
    assert np.isfinite(upscaled).all()
    np.testing.assert_allclose(upscaled, expected, atol=1e-5)  # the trained network, to float rounding
