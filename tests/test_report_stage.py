"""`srbench report` end to end on a small workspace built here: real prepared images, SR images
and their real metrics, model cards, evaluation statuses and training histories."""

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from srbench.images import read_image, write_png
from srbench.metrics import sr_metrics

MODELS = {"srcnn": 3, "srgan": 12}  # model -> noise added to HR to make its "SR" images: srcnn is the better
LPIPS_STATUS = "alexnet weights not found offline"


def _write_json(path: Path, values: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))


def _evaluate(model: str, sr_images: dict[str, np.ndarray], hr_images: dict[str, np.ndarray]) -> None:
    """What `srbench evaluate MODEL` leaves for the report: SR PNGs, per-image and mean metrics
    (no lpips key: LPIPS unavailable), results/MODEL/evaluation.json."""
    per_image = {name: sr_metrics(sr, hr_images[name], scale=2) for name, sr in sr_images.items()}
    for name, sr in sr_images.items():
        write_png(Path(f"results/{model}/valid/sr/{name}.png"), sr)
    _write_json(Path(f"results/{model}/valid/per_image.json"), per_image)
    _write_json(Path(f"results/{model}/evaluation.json"), {"lpips": LPIPS_STATUS, "device": "cpu"})
    means = {key: float(np.mean([values[key] for values in per_image.values()])) for key in ("psnr_y", "ssim_y", "psnr_rgb", "keras_accuracy")}
    _write_json(Path(f"metrics/eval/{model}.json"), {"valid": {**means, "megapixels_per_second": 1.5, "n_images": len(per_image)}})


def _train(model: str, batch_size: int) -> None:
    """What `srbench train MODEL` leaves for the report: the model card, the numbers-only summary,
    the training history with seconds and images seen."""
    card = {
        "model": model, "scale": 2, "arch": "test", "device": "cpu", "device_name": "Test CPU", "precision": "fp32", "threads": 2,
        "world_size": 1, "torch": "2.x", "steps": 40, "batch_size": batch_size, **({"content_loss": "mse"} if model == "srgan" else {}),
    }
    _write_json(Path(f"models/{model}.json"), card)
    _write_json(Path(f"metrics/train/{model}.json"), {"n_parameters": 1234, "training_seconds": 80.0, "steps": 40, "world_size": 1})
    Path("plots/train").mkdir(parents=True, exist_ok=True)
    with open(f"plots/train/{model}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["step", "seconds", "images", "loss", "lr", "val_psnr_y"])
        writer.writeheader()
        for step in (10, 20, 30, 40):
            timing = {"step": step, "seconds": 2.0 * step, "images": step * batch_size}
            writer.writerow({**timing, "loss": 1 / step, "lr": 1e-3})
            if step % 20 == 0:
                writer.writerow({**timing, "val_psnr_y": 25 + step / 10})


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prepared_x2: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = {"report": {"models": ["bicubic", *MODELS], "crop_size": 24, "crop_images": 1, "departures": {"srcnn": "a test recipe"}}}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    hr_images = {path.stem: read_image(path) for path in sorted((prepared_x2 / "valid" / "HR").glob("*.png"))}
    lr_images = {name: read_image(prepared_x2 / "valid" / "LR" / f"{name}.png") for name in hr_images}
    _evaluate("bicubic", {name: np.repeat(np.repeat(lr, 2, 0), 2, 1) for name, lr in lr_images.items()}, hr_images)
    rng = np.random.default_rng(0)
    for (model, noise), batch_size in zip(MODELS.items(), (16, 4)):
        noisy = {name: np.clip(hr.astype(int) + rng.integers(-noise, noise + 1, hr.shape), 0, 255).astype(np.uint8) for name, hr in hr_images.items()}
        _evaluate(model, noisy, hr_images)
        _train(model, batch_size)
    return tmp_path


def test_report_stage_writes_tables_figures_and_notes(workspace: Path, prepared_x2: Path, srbench_here: Callable[..., tuple[int, str]]) -> None:
    status, stderr = srbench_here("report", "--data", str(prepared_x2))
    assert status == 0, stderr
    report = (workspace / "reports" / "report.md").read_text()
    names = sorted(path.stem for path in (prepared_x2 / "valid" / "HR").glob("*.png"))
    tables = [block for block in report.split("\n\n") if block.startswith("| ")]
    means, per_image = (list(csv.reader(table.splitlines(), delimiter="|")) for table in tables)
    assert [row[1].strip() for row in means[2:]] == ["bicubic", "srcnn", "srgan"]
    assert all(row[7].strip() == "n/a" for row in means[2:])  # no lpips key: not measured
    assert [row[1].strip() for row in per_image[2:]] == [*names, "*median*", "*mean*"]
    methods = ["bicubic", *MODELS]
    measured = {method: json.loads((workspace / "results" / method / "valid" / "per_image.json").read_text()) for method in methods}
    for row, name in zip(per_image[2:], names):
        winner = max(methods, key=lambda method: measured[method][name]["psnr_y"])
        assert row[-2].strip().startswith(winner) and row[2 + methods.index(winner)].strip().startswith("**")
        assert sum(cell.strip().startswith("**") for cell in row[2:-2]) == 1
    assert {row[-2].strip().split()[0] for row in per_image[2:4]} == {"bicubic", "srcnn"}  # the easy retina: bicubic wins there
    assert f"LPIPS (AlexNet, lower is better): {LPIPS_STATUS}." in report
    assert "Trained on: cpu (Test CPU), fp32 (every model)" in report and "Inference measured on: cpu." in report
    assert "- srgan content loss: mse." in report and "adversarial phase only" in report
    figures = sorted(path.name for path in (workspace / "reports").glob("*.png"))
    assert figures == [f"comparison_{names[0]}.png", "training_curves.png"]  # crop_images: 1
    for figure in figures:
        assert f"]({figure})" in report
        with Image.open(workspace / "reports" / figure) as image:
            assert image.width == 1500
    assert (workspace / "mlruns" / "mlflow.db").is_file()


def test_report_refuses_metrics_with_strings_and_a_missing_model_card(workspace: Path, prepared_x2: Path, srbench_here: Callable[..., tuple[int, str]]) -> None:
    Path("models/srgan.json").unlink()
    status, stderr = srbench_here("report", "--data", str(prepared_x2))
    assert status != 0 and "models/srgan.json: not found (run srbench train srgan first)" in stderr
    _write_json(Path("metrics/eval/srcnn.json"), {"lpips_status": "old", **json.loads(Path("metrics/eval/bicubic.json").read_text())})
    status, stderr = srbench_here("report", "--data", str(prepared_x2))
    assert status != 0 and "metrics/eval/srcnn.json: lpips_status is not a test set of numbers" in stderr
    assert not Path("reports").exists() and not Path("mlruns/mlflow.db").exists()  # refused before any work
