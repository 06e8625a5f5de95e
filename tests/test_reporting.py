"""The report's pieces: the Markdown table, the published numbers, the figures."""

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srbench import reporting
from srbench.images import write_png
from srbench.published import PUBLISHED, published
from srbench.reporting import COLUMNS, comparison_figure, markdown_table, training_curves_figure

ROW = {
    "name": "vdsr", "n_parameters": 668227, "training_seconds": 128.4, "psnr_y": 37.1234, "ssim_y": 0.95678, "psnr_rgb": 35.5,
    "keras_accuracy": 0.91234, "megapixels_per_second": 0.0912,
}


def cells(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_table_shows_lpips_as_unavailable_not_zero_and_published_numbers_beside() -> None:
    rows = [
        {**ROW, "name": "bicubic", "n_parameters": 0, "training_seconds": None, "lpips": None, "published": (33.66, 0.9299)},
        {**ROW, "lpips": 0.123456, "published": None},
    ]
    table = markdown_table(rows)
    header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
    assert header == list(COLUMNS) and header[7] == "Keras accuracy"
    bicubic, vdsr = cells(table)
    assert bicubic == ["bicubic", "0", "–", "37.12", "0.9568", "35.50", "n/a", "0.9123", "0.09", "33.66 / 0.9299"]
    assert vdsr == ["vdsr", "668,227", "2m08s", "37.12", "0.9568", "35.50", "0.1235", "0.9123", "0.09", "–"]


def test_published_numbers_are_the_cited_ones() -> None:
    assert published("Set5", 4, "srgan") == (29.40, 0.8472)
    assert published("Set5", 4, "srresnet") == (32.05, 0.9019)
    assert published("Urban100", 2, "vdsr") == (30.76, 0.9140)
    assert published("DIV2K", 4, "srcnn") == (27.78, 0.8753)
    assert published("Set5", 3, "vdsr") is None and published("Set5", 2, "srcnn-seed") is None
    assert all(20 < psnr < 40 and 0.6 < ssim < 1 for table in PUBLISHED.values() for psnr, ssim in table.values())


def test_comparison_figure_shows_at_most_max_images_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    per_image = {"bicubic": {}}
    for name in ("a", "b", "c"):
        hr = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
        write_png(tmp_path / "valid" / "HR" / f"{name}.png", hr)
        write_png(tmp_path / "valid" / "LR" / f"{name}.png", hr[::2, ::2])
        write_png(tmp_path / "sr" / f"{name}.png", hr)
        per_image["bicubic"][name] = {"psnr_y": 30.0, "ssim_y": 0.9}
    for rows in (1, 3):
        comparison_figure(tmp_path / f"grid{rows}.png", tmp_path / "valid", {"bicubic": tmp_path / "sr"}, per_image, 2, 16, rows)
    with Image.open(tmp_path / "grid1.png") as one, Image.open(tmp_path / "grid3.png") as three:
        assert three.height > 2 * one.height



def _write_history(path: Path, seconds_per_step: float | None) -> None:
    """A training history like the training loop's: loss every 10 steps, validation every 30, and
    the training seconds on every row unless ``seconds_per_step`` is None (an old history)."""
    columns = ["step", "loss", "val_psnr_y"] + ([] if seconds_per_step is None else ["seconds"])
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for step in range(10, 100, 10):
            rows = [{"loss": 1.0 / step}] + ([{"val_psnr_y": 20 + step / 10}] if step % 30 == 0 else [])
            for row in rows:
                seconds = {} if seconds_per_step is None else {"seconds": step * seconds_per_step}
                writer.writerow({"step": step, **row, **seconds})


@pytest.mark.parametrize(
    ("histories", "xlabel", "xscale"),
    [
        ({"srcnn": 0.05, "srgan": 2.0}, "training time (s)", "log"),
        ({"srcnn": 0.05, "srgan": None}, "step", "linear"),  # one history without seconds: steps for all
    ],
)
def test_training_curves_plot_validation_against_training_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, histories: dict, xlabel: str, xscale: str
) -> None:
    curves = {}
    for model, seconds_per_step in histories.items():
        curves[model] = tmp_path / f"{model}.csv"
        _write_history(curves[model], seconds_per_step)
    drawn = {}
    save = reporting._save

    def capture(figure, path: Path) -> None:
        loss_axis, psnr_axis = figure.axes
        drawn.update(
            xlabel=psnr_axis.get_xlabel(),
            xscale=psnr_axis.get_xscale(),
            lines={line.get_label(): np.asarray(line.get_xdata(), dtype=float).tolist() for line in psnr_axis.get_lines()},
            fontsizes=[text.get_fontsize() for axis in figure.axes for text in (axis.title, axis.xaxis.label, *axis.get_xticklabels())],
        )
        save(figure, path)

    monkeypatch.setattr(reporting, "_save", capture)
    training_curves_figure(tmp_path / "curves.png", curves, baseline_psnr=25.0)
    assert drawn["xlabel"] == xlabel and drawn["xscale"] == xscale
    assert set(drawn["lines"]) == {"srcnn", "srgan", "bicubic"}
    expected_srcnn = [1.5, 3.0, 4.5] if xscale == "log" else [30, 60, 90]
    assert drawn["lines"]["srcnn"] == pytest.approx(expected_srcnn)
    assert min(drawn["fontsizes"]) >= 8
    with Image.open(tmp_path / "curves.png") as image:
        assert image.width >= 1000 and image.height >= 400
