"""End to end: `dvc repro` on a tiny profile in a temporary copy of the repository."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from PIL import Image

from pipeline.common import EXPERIMENT, tracking_uri

REPO = Path(__file__).resolve().parents[1]
COPIED = ["dvc.yaml", "params.yaml", ".dvc/config", ".dvcignore", ".gitignore", "pipeline", "src"]
MODELS = ["srcnn", "vdsr", "srgan"]
TINY = {
    "data": {"max_side": 64, "n_valid": 2},
    "prepare": {"patch_size": 32, "stride": 32, "workers": 1},
    "train": {"log_every": 2, "validate_every": 4, "checkpoint_every": 4},
    "srcnn": {"steps": 6, "batch_size": 4, "patch_size": 16},
    "vdsr": {"steps": 4, "batch_size": 4, "patch_size": 16, "arch": {"depth": 4, "num_filters": 16}},
    "srgan": {"pretrain_steps": 3, "steps": 2, "batch_size": 2, "patch_size": 16, "arch": {"num_features": 16, "num_blocks": 2}},
    "report": {"crop_size": 32},
}


def merge(base: dict, override: dict) -> dict:
    for key, value in override.items():
        base[key] = merge(base[key], value) if isinstance(value, dict) and key != "arch" else value
    return base


def dvc(*args: str, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / name)
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "tiny profile"], cwd=root, check=True)
    dvc("repro", cwd=root)
    return root


def test_metrics_for_every_model(repo: Path) -> None:
    for model in ["bicubic", *MODELS]:
        metrics = json.loads((repo / "metrics" / "eval" / f"{model}.json").read_text())
        assert set(metrics) >= {"psnr_y", "ssim_y", "psnr_rgb", "megapixels_per_second"}
        assert 5 < metrics["psnr_y"] < 100 and 0 < metrics["ssim_y"] <= 1
        assert len(list((repo / "results" / model / "sr").glob("*.png"))) == 2
    for model in MODELS:
        summary = json.loads((repo / "metrics" / "train" / f"{model}.json").read_text())
        assert summary["n_parameters"] > 0 and summary["training_seconds"] > 0
        assert (repo / "models" / f"{model}.pt").is_file()
    assert "psnr_y" in dvc("metrics", "show", cwd=repo)


def test_report_has_a_row_per_model_and_figures(repo: Path) -> None:
    report = (repo / "reports" / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and not line.startswith("| Model")]
    assert [row.split("|")[1].strip() for row in rows] == ["bicubic", *MODELS]
    assert "vgg_weights: random" in report
    for figure in ("comparison.png", "training_curves.png"):
        with Image.open(repo / "reports" / figure) as image:
            assert image.width > 300 and image.height > 200


def test_mlflow_has_a_run_per_stage_and_model(repo: Path) -> None:
    mlflow.set_tracking_uri(tracking_uri(repo / "mlruns"))
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT])
    stages = sorted(runs["tags.stage"])
    expected = ["download", "prepare", "report", *(f"train@{m}" for m in MODELS), *(f"evaluate@{m}" for m in MODELS), "evaluate-bicubic"]
    assert stages == sorted(expected)
    assert set(runs["status"]) == {"FINISHED"}
    trained = runs[runs["tags.stage"].str.startswith("train@")]
    assert sorted(trained["tags.model"]) == sorted(MODELS)
    assert trained["metrics.psnr_y"].notna().all()
    assert (trained["params.device"] == "cpu").all()
    srgan = trained[trained["tags.model"] == "srgan"].iloc[0]
    assert srgan["tags.vgg_weights"] == "random"
    client = mlflow.MlflowClient()
    history = client.get_metric_history(srgan["run_id"], "loss")
    assert len(history) >= 3 and history[-1].step == 5  # 3 SRResNet steps then 2 adversarial ones
    assert {a.path for a in client.list_artifacts(srgan["run_id"])} >= {"samples", "srgan.csv"}


def test_second_repro_is_a_no_op_and_a_vdsr_change_reruns_only_vdsr(repo: Path) -> None:
    assert "Data and pipelines are up to date" in dvc("repro", cwd=repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["vdsr"]["steps"] = 5
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "vdsr.steps" in dvc("params", "diff", cwd=repo)
    output = dvc("repro", cwd=repo)
    ran = {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}
    assert ran == {"train@vdsr", "evaluate@vdsr", "report"}
    assert json.loads((repo / "metrics" / "train" / "vdsr.json").read_text())["steps"] == 5
