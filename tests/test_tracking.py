"""The MLflow side of every stage: SQLite store under mlruns/, tags, FAILED on exceptions."""

from pathlib import Path

import mlflow
import pytest

from pipeline.common import Params, ParamError
from pipeline.tracking import EXPERIMENT, mlflow_run, tracking_uri


def test_run_is_tagged_and_logged_to_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_STAGE", "train@vdsr")
    with mlflow_run("train", {"steps": 3, "arch": {"depth": 20}}, model="vdsr") as tracker:
        tracker.log_metric("psnr_y", 30.0)
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    mlflow.set_tracking_uri(tracking_uri(tmp_path / "mlruns"))
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT])
    row = runs.iloc[0]
    assert row["status"] == "FINISHED"
    assert row["tags.stage"] == "train@vdsr" and row["tags.model"] == "vdsr"
    assert row["params.arch.depth"] == "20" and row["metrics.psnr_y"] == 30.0


def test_exception_marks_the_run_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_STAGE", raising=False)
    with pytest.raises(RuntimeError):
        with mlflow_run("evaluate", {}, model="srcnn"):
            raise RuntimeError("boom")
    mlflow.set_tracking_uri(tracking_uri(tmp_path / "mlruns"))
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT])
    assert list(runs["status"]) == ["FAILED"]
    assert list(runs["tags.launched_by"]) == ["cli"]


def test_params_checks_name_file_key_and_value(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  steps: -3\n  lr: 0\n  device: cpu\n")
    params = Params(path)
    with pytest.raises(ParamError, match=r"params.yaml: train.steps = -3: must be >= 1"):
        params.integer("train.steps", minimum=1)
    with pytest.raises(ParamError, match="train.lr = 0: must be a positive number"):
        params.positive_float("train.lr")
    with pytest.raises(ParamError, match="missing key train.seed"):
        params.integer("train.seed")
    path.write_text("train: [unclosed\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        Params(path)
