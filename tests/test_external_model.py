"""What docs/extending.md describes, through the whole pipeline: a model from another package
(ESPCN, defined in tests/external_model with its own pyproject.toml declaring a ``srbench.models``
entry point, installed with pip, then a params section, its name in dvc.yaml's matrices and in
report.models) and a published checkpoint of another architecture (an EDSR in its authors'
layout, in ``report.external``). `dvc repro` trains, evaluates and reports both beside bicubic."""

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import torch
import yaml

from pipeline.layout import Outputs
from pipeline.tracking import EXPERIMENT, tracking_uri
from pipeline_repo import REPO, copy_repo, dvc, merge
from srbench.external.edsr import EDSR

ESPCN = {  # the new section of params.yaml
    "channels": "y",
    "rgb_permutation": False,
    "arch": {"n1": 16, "n2": 8},
    "steps": 6,
    "batch_size": 4,
    "patch_size": 16,
    "loss_scale": 1,
    "optimizer": {"name": "adam", "lr": 1.0e-3},
}
TINY = {
    "data": {"max_side": 64, "valid_images": ["chelsea", "coffee"]},
    "prepare": {"patch_size": 32, "stride": 32, "workers": 1},
    "train": {"log_every": 2, "validations": 2, "checkpoint_every": 4},
    "espcn": ESPCN,
    "report": {"models": ["bicubic", "espcn"], "crop_size": 32, "crop_images": 1, "external": {"edsr-x2": "published/edsr_x2.pth"}},
}


def install(package: Path, target: Path) -> None:
    """``pip install`` of ``package`` into ``target`` (a folder put on PYTHONPATH), from a copy
    so that the build leaves nothing in the repository."""
    source = shutil.copytree(package, target.parent / "source", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation", "--target", str(target)]
    subprocess.run([*pip, str(source)], check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    site = tmp_path_factory.mktemp("espcn") / "site"
    install(REPO / "tests" / "external_model", site)
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    params["report"]["departures"] = {}
    root = copy_repo(tmp_path_factory.mktemp("repo"), params)
    (root / "published").mkdir()
    torch.manual_seed(0)
    torch.save(EDSR(2, n_resblocks=2, n_feats=16).state_dict(), root / "published" / "edsr_x2.pth")
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
    pipeline["stages"]["train"]["matrix"]["model"] = ["espcn"]  # the name in dvc.yaml (the others left out: time)
    pipeline["stages"]["evaluate"]["matrix"]["model"] = ["espcn"]
    del pipeline["stages"]["train-srgan"], pipeline["plots"]
    (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("PYTHONPATH", str(site))  # the installed package, for every stage dvc runs
        dvc("repro", cwd=root)
        yield root


def test_the_external_model_trains_evaluates_and_has_its_report_row(repo: Path) -> None:
    run = Outputs("espcn", 0)
    card = json.loads((repo / run.card).read_text())
    assert card["model"] == "espcn" and card["arch"] == ESPCN["arch"] and card["channels"] == "y"
    summary = json.loads((repo / run.training_summary).read_text())
    assert summary["steps"] == 6 and summary["n_parameters"] == (1 * 16 * 25 + 16) + (16 * 8 * 9 + 8) + (8 * 4 * 9 + 4)  # luma, x2
    headline = json.loads((repo / run.headline).read_text())["valid"]
    bicubic = json.loads((repo / Outputs("bicubic").headline).read_text())["valid"]
    assert 5 < headline["psnr_y"] < 100 and headline != bicubic
    report = (repo / "reports" / "report.md").read_text()
    rows = report[report.index("| Model"):].split("\n\n")[0].splitlines()[2:]
    assert [row.split("|")[1].strip() for row in rows] == ["bicubic", "espcn", "edsr-x2 (not trained here)"]
    assert f"{headline['psnr_y']:.2f}" in rows[1]
    assert "espcn: Shi et al. 2016, CVPR" in report and "| espcn | " in report[report.index("## Cost"):]


def test_a_published_checkpoint_is_evaluated_by_its_stage_and_marked_in_the_report(repo: Path) -> None:
    evaluation = json.loads((repo / "results" / "external" / "edsr-x2" / "evaluation.json").read_text())
    assert evaluation["checkpoint"]["architecture"] == "EDSR" and evaluation["checkpoint"]["file"] == "published/edsr_x2.pth"
    headline = json.loads((repo / "metrics" / "eval" / "external" / "edsr-x2.json").read_text())["valid"]
    report = (repo / "reports" / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| edsr-x2 (not trained here) | "))  # the table of means
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert cells[1] == f"{evaluation['checkpoint']['parameters']:,}" and cells[2] == "–" and cells[3] == f"{headline['psnr_y']:.2f}"
    assert "Rows marked (not trained here): published checkpoints" in report and "edsr-x2: EDSR x2 (16nf, 2nb), published/edsr_x2.pth" in report
    assert "evaluate-external@edsr-x2" in dvc("stage", "list", cwd=repo)


def test_the_external_model_is_registered_with_its_code(repo: Path) -> None:
    mlflow.set_tracking_uri(tracking_uri(repo / "mlruns"))
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT])
    assert set(runs["status"]) == {"FINISHED"} and "train@espcn-0" in set(runs["tags.stage"])
    assert len(mlflow.MlflowClient().search_model_versions("name = 'srbench-espcn'")) == 1
    [code] = [path.parent for path in (repo / "mlruns").rglob("srbench_espcn.py")]  # the logged model's code
    assert code.name == "code" and (code / "srbench" / "models" / "spec.py").is_file()
