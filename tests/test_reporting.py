"""The report's pieces: the Markdown tables, the published numbers, the figures."""

import csv
from pathlib import Path

import matplotlib.text
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from srbench.errors import SrbenchError
from srbench.images import write_png
from srbench.metrics import psnr, rgb_to_y
from srbench.models import model_specs
from srbench.published import BICUBIC
from srbench.reporting import (
    COLUMNS,
    colour_cast_lines,
    compare_crops,
    comparison_figure,
    conventions,
    cost_table,
    crop_box,
    error_limit,
    markdown_table,
    per_image_table,
    save_figure,
    seeds_line,
    training_curves_figure,
)

ROW = {
    "name": "vdsr", "n_parameters": 668227, "training_seconds": 128.4, "psnr_y": 37.1234, "ssim_y": 0.95678, "psnr_rgb": 35.5,
    "mean_error_r": 0.26, "mean_error_g": -1.249, "mean_error_b": -0.04, "max_worst_channel_error": 1.96,
    "keras_accuracy": 0.91234, "megapixels_per_second": 0.0912,
}


def cells(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def smallest_text_px(figure: Figure, width_px: int = 900) -> float:
    """Height in pixels of the figure's smallest text once the figure is scaled to ``width_px``."""
    sizes = [text.get_fontsize() for text in figure.findobj(matplotlib.text.Text) if text.get_visible() and text.get_text()]
    return min(sizes) / 72 * width_px / figure.get_figwidth()


def test_table_shows_lpips_as_unavailable_not_zero_and_published_numbers_beside() -> None:
    rows = [
        {**ROW, "name": "bicubic", "n_parameters": 0, "training_seconds": None, "published": (33.66, 0.9299)},  # no lpips key
        {**ROW, "lpips": 0.123456, "published": None, "mean_error_r": 5.04, "max_worst_channel_error": 9.96},  # a red cast
    ]
    table = markdown_table(rows)
    header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
    assert header == list(COLUMNS) and header[6] == "Colour error (levels)" and header[8] == "Keras accuracy"
    bicubic, vdsr = cells(table)
    colour = "+0.3 / −1.2 / +0.0 (worst image 2.0)"  # true minus signs, no −0.0; 1.96 is within 2 levels: no mark
    assert bicubic == ["bicubic", "0", "–", "37.12", "0.9568", "35.50", colour, "n/a", "0.9123", "0.09", "33.66 / 0.9299"]
    colour = "+5.0 / −1.2 / +0.0 (worst image 10.0 ⚠)"
    assert vdsr == ["vdsr", "668,227", "2m08s", "37.12", "0.9568", "35.50", colour, "0.1235", "0.9123", "0.09", "–"]


def test_the_published_column_appears_only_with_published_numbers() -> None:
    table = markdown_table([{**ROW, "name": "bicubic", "n_parameters": 0, "training_seconds": None, "published": None}, {**ROW, "published": None}])
    header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
    assert header == list(COLUMNS[:-1]) and all(len(row) == len(header) for row in cells(table))


def test_the_conventions_line_names_luma_crop_rounding_and_the_lr_kernel() -> None:
    line = conventions(3, "matlab_bicubic", "per_pass")
    assert "BT.601 luma (16–235 of 255)" in line and "3 px cropped at each border" in line and "rounded to uint8" in line
    assert "MATLAB's bicubic imresize of HR (rounded to 8 bits after each pass)" in line
    assert "on doubles, rounded once" in conventions(2, "matlab_bicubic", "once")
    assert "LR: official LR images." in conventions(4, "official", "per_pass")


def test_published_numbers_are_the_cited_ones() -> None:
    specs = model_specs()
    assert specs["srresnet"].published == {("Set5", 4): (32.05, 0.9019)}
    assert specs["srcnn"].published[("DIV2K", 4)] == (27.78, 0.8753) and BICUBIC[("Set5", 2)] == (33.66, 0.9299)
    tables = [BICUBIC, *(spec.published for spec in specs.values())]
    assert all(20 < psnr < 40 and 0.6 < ssim < 1 for table in tables for psnr, ssim in table.values())
    assert all(key[0] in ("Set5", "Set14", "B100", "Urban100", "DIV2K") and key[1] in (2, 3, 4) for table in tables for key in table)


def _colour(red: float, green: float = 0.0, blue: float = 0.0) -> dict[str, float]:
    """An image's mean channel errors, as in per_image.json."""
    errors = {"mean_error_r": red, "mean_error_g": green, "mean_error_b": blue}
    return errors | {"worst_channel_error": max(map(abs, errors.values()))}


def test_per_image_table_has_a_row_per_image_and_marks_each_rows_best() -> None:
    per_image = {  # an easy image (retina) on which bicubic wins, two on which the models do
        "bicubic": {"retina": {"psnr_y": 52.96, "ssim_y": 0.99}, "astronaut": {"psnr_y": 30.70, "ssim_y": 0.90}, "coffee": {"psnr_y": 32.0, "ssim_y": 0.93}},
        "srcnn": {"retina": {"psnr_y": 50.0, "ssim_y": 0.98}, "astronaut": {"psnr_y": 31.554, "ssim_y": 0.95}, "coffee": {"psnr_y": 33.0, "ssim_y": 0.92}},
        "vdsr": {"retina": {"psnr_y": 51.0, "ssim_y": 0.97}, "astronaut": {"psnr_y": 31.546, "ssim_y": 0.94}, "coffee": {"psnr_y": 32.5, "ssim_y": 0.94}},
    }
    for images in per_image.values():
        for values in images.values():
            values |= _colour(0.5, -1.0, 2.0)  # 2 levels: within bounds
    table = per_image_table(per_image)
    header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
    assert header == ["Image", "bicubic", "srcnn", "vdsr", "Best Y-PSNR (dB over bicubic)"]
    rows = {row[0]: row[1:] for row in cells(table)}
    assert list(rows) == ["astronaut", "coffee", "retina", "*median*", "*mean*"]
    assert rows["retina"] == ["**52.96** / **0.9900**", "50.00 / 0.9800", "51.00 / 0.9700", "bicubic"]
    assert rows["astronaut"] == ["30.70 / 0.9000", "**31.55** / **0.9500**", "**31.55** / 0.9400", "srcnn, vdsr (+0.85)"]  # equal as printed
    assert rows["coffee"] == ["32.00 / 0.9300", "**33.00** / 0.9200", "32.50 / **0.9400**", "srcnn (+1.00)"]
    assert rows["*median*"] == ["32.00 / 0.9300", "**33.00** / **0.9500**", "32.50 / 0.9400", "srcnn (+1.00)"]
    assert rows["*mean*"][0] == "**38.55** / 0.9400" and rows["*mean*"][-1] == "bicubic"  # the mean hides two losses of three


def test_per_image_table_marks_the_cells_of_images_with_a_colour_cast() -> None:
    scores = {"psnr_y": 30.0, "ssim_y": 0.9}
    per_image = {
        "bicubic": {"astronaut": scores | _colour(0.1), "coffee": scores | _colour(-0.2)},
        "srcnn": {"astronaut": scores | _colour(5.0), "coffee": scores | _colour(1.5)},  # a red cast on astronaut only
        "vdsr": {"astronaut": scores | _colour(0.0, 0.0, -2.01), "coffee": scores | _colour(0.3)},  # too little blue
    }
    rows = {row[0]: row[1:-1] for row in cells(per_image_table(per_image))}
    assert rows["astronaut"] == ["**30.00** / **0.9000**", "**30.00** / **0.9000** ⚠", "**30.00** / **0.9000** ⚠"]
    assert not any("⚠" in cell for label in ("coffee", "*median*", "*mean*") for cell in rows[label])


def test_colour_cast_lines_name_each_model_with_a_cast_and_its_worst_image() -> None:
    per_image = {
        "bicubic": {"astronaut": _colour(0.1), "coffee": _colour(-0.2), "retina": _colour(0.0)},
        "srcnn": {"astronaut": _colour(5.0, 0.04, -0.3), "coffee": _colour(1.5), "retina": _colour(2.5)},
        "vdsr": {"astronaut": _colour(1.5), "coffee": _colour(-1.5, 1.5, 1.99), "retina": _colour(2.0)},  # 2 levels at most
        "srgan": {"astronaut": _colour(0.0, -3.0, -3.26), "coffee": _colour(0.0), "retina": _colour(0.0)},
    }
    assert colour_cast_lines(per_image) == [
        "**srcnn**: mean colour error above 2 grey levels on 2 of 3 images (worst: astronaut, r/g/b = +5.0 / +0.0 / −0.3)",
        "**srgan**: mean colour error above 2 grey levels on 1 of 3 images (worst: astronaut, r/g/b = +0.0 / −3.0 / −3.3)",
    ]
    within = {method: per_image[method] for method in ("bicubic", "vdsr")}
    assert colour_cast_lines(within) == ["Every model's mean colour error stays within 2 grey levels on every image."]


def _textured_photo(height: int, width: int, box: tuple[int, int, int]) -> np.ndarray:
    """A smooth grey image with a noisy square at ``box`` (top, left, side): the most detailed crop."""
    rng = np.random.default_rng(0)
    image = np.full((height, width, 3), 120, dtype=np.uint8)
    image[..., 0] = np.linspace(90, 150, width).astype(np.uint8)  # a gentle gradient elsewhere
    top, left, side = box
    image[top : top + side, left : left + side] = rng.integers(60, 200, size=(side, side, 1), dtype=np.uint8)
    return image


def test_crop_box_finds_the_detail_away_from_the_border_and_on_the_lr_grid() -> None:
    hr = _textured_photo(96, 128, (40, 64, 24))
    top, left, side = crop_box(hr, 24, scale=4)
    assert (top, left, side) == (40, 64, 24)
    assert crop_box(hr, 200, scale=4)[2] == 88  # as large as the image allows inside its 4-px border
    corner = _textured_photo(96, 128, (0, 0, 24))
    top, left, side = crop_box(corner, 24, scale=4)
    assert top >= 4 and left >= 4 and top % 4 == 0 and left % 4 == 0 and side % 4 == 0


@pytest.fixture
def comparison_files(tmp_path: Path) -> tuple[Path, dict[str, Path], np.ndarray]:
    """valid/HR, valid/LR of one 96 x 128 image at x2 and the SR images of two methods."""
    hr = _textured_photo(96, 128, (32, 64, 32))
    write_png(tmp_path / "valid" / "HR" / "photo.png", hr)
    write_png(tmp_path / "valid" / "LR" / "photo.png", hr[::2, ::2])
    rng = np.random.default_rng(1)
    results = {}
    for method, noise in (("bicubic", 12), ("srcnn", 4)):
        sr = np.clip(hr.astype(int) + rng.integers(-noise, noise + 1, size=hr.shape), 0, 255).astype(np.uint8)
        results[method] = tmp_path / method
        write_png(results[method] / "photo.png", sr)
    return tmp_path / "valid", results, hr


def test_crops_their_numbers_and_difference_maps_are_the_crops_own(comparison_files: tuple[Path, dict[str, Path], np.ndarray]) -> None:
    valid, results, hr = comparison_files
    comparison = compare_crops("photo", valid, results, scale=2, crop_size=32)
    assert comparison.box == (32, 64, 32)
    window = (slice(32, 64), slice(64, 96))
    assert np.array_equal(comparison.lr, np.repeat(np.repeat(hr[::2, ::2][16:32, 32:48], 2, 0), 2, 1))
    for method, folder in results.items():
        sr = np.asarray(Image.open(folder / "photo.png"))
        assert np.array_equal(comparison.crops[method], sr[window])
        assert np.array_equal(comparison.errors[method], np.abs(rgb_to_y(sr[window]) - rgb_to_y(hr[window])))
        assert comparison.scores[method][0] == pytest.approx(psnr(sr[window], hr[window], 0, y_channel=True))
        assert comparison.scores[method][0] != pytest.approx(psnr(sr, hr, 2, y_channel=True), abs=0.01)  # not the whole image's
    assert comparison.scores["srcnn"][0] > comparison.scores["bicubic"][0]
    limit = error_limit([comparison])
    assert limit % 5 == 0 and limit >= np.percentile(comparison.errors["bicubic"], 99)


def test_comparison_figure_draws_the_box_where_the_crop_came_from(comparison_files: tuple[Path, dict[str, Path], np.ndarray]) -> None:
    valid, results, hr = comparison_files
    comparison = compare_crops("photo", valid, results, scale=2, crop_size=32)
    figure = comparison_figure(comparison, scale=2, limit=20.0)
    overview = figure.axes[0]
    [box] = [patch for patch in overview.patches if isinstance(patch, Rectangle)]
    assert (box.get_x(), box.get_y(), box.get_width(), box.get_height()) == (64 - 0.5, 32 - 0.5, 32, 32)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3].astype(int)
    yellow = (pixels[..., 0] > 200) & (pixels[..., 1] > 200) & (pixels[..., 2] < 80)  # the test image has no yellow
    (x0, y0), (x1, y1) = overview.transData.transform([(63.5, 31.5), (95.5, 63.5)])  # the box's corners on the canvas
    rows, columns = np.nonzero(yellow)
    rows = pixels.shape[0] - rows  # canvas y runs upwards
    panel = overview.get_window_extent()
    in_panel = (columns >= panel.x0) & (columns <= panel.x1) & (rows >= panel.y0) & (rows <= panel.y1)
    rows, columns = rows[in_panel], columns[in_panel]
    assert len(rows) > 4 * abs(x1 - x0)  # the outline is drawn
    assert len(rows) > 100
    on_edge = (np.minimum(abs(columns - x0), abs(columns - x1)) <= 3) | (np.minimum(abs(rows - y0), abs(rows - y1)) <= 3)
    inside = (columns >= min(x0, x1) - 3) & (columns <= max(x0, x1) + 3) & (rows >= min(y0, y1) - 3) & (rows <= max(y0, y1) + 3)
    assert (on_edge & inside).all()  # every yellow pixel lies on the rectangle's outline
    maps = [image for axis in figure.axes for image in axis.images if image.get_cmap().name == "inferno"]
    assert len(maps) == 2 and all(image.get_clim() == (0.0, 20.0) for image in maps)
    assert np.array_equal(maps[1].get_array(), comparison.errors["srcnn"])
    assert any("the same scale in every panel" in axis.get_xlabel() for axis in figure.axes)  # the colour bar's label
    assert smallest_text_px(figure) >= 9


def _write_history(
    path: Path, seconds_per_step: float, batch: int, psnr_offset: float = 0.0, columns: tuple[str, ...] = ("step", "seconds", "images", "loss", "lr", "val_psnr_y")
) -> None:
    """A training history like the training loop's: loss every 10 steps, validation every 30
    (Y-PSNR 23, 26, 29 dB plus ``psnr_offset``)."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        for step in range(10, 100, 10):
            timing = {"step": step, "seconds": step * seconds_per_step, "images": step * batch}
            writer.writerow({**timing, "loss": 1.0 / step, "lr": 0.1})
            if step % 30 == 0:
                writer.writerow({**timing, "val_psnr_y": 20 + step / 10 + psnr_offset})


def test_training_curves_plot_against_minutes_and_images_seen(tmp_path: Path) -> None:
    curves = {"srcnn": tmp_path / "srcnn.csv", "srgan": tmp_path / "srgan.csv"}
    _write_history(curves["srcnn"], seconds_per_step=6.0, batch=16, psnr_offset=5.0)
    _write_history(curves["srgan"], seconds_per_step=0.5, batch=4)
    figure = training_curves_figure({model: [path] for model, path in curves.items()}, baseline_psnr=35.0)
    (time_psnr, images_psnr), (time_loss, images_loss) = np.reshape(figure.axes, (2, 2))
    lines = {axis: {line.get_label(): line for line in axis.get_lines()} for axis in (time_psnr, images_psnr, time_loss)}
    assert set(lines[time_psnr]) == {"srcnn", "srgan", "bicubic"}
    assert list(lines[time_psnr]["srcnn"].get_xdata()) == pytest.approx([3.0, 6.0, 9.0])  # minutes: 30 steps x 6 s
    assert list(lines[images_psnr]["srcnn"].get_xdata()) == pytest.approx([480, 960, 1440])
    assert list(lines[images_psnr]["srgan"].get_ydata()) == pytest.approx([23, 26, 29])
    assert list(lines[time_psnr]["bicubic"].get_ydata()) == [35.0, 35.0]
    assert len(lines[time_loss]["srgan"].get_xdata()) == 9
    assert time_loss.get_xlabel() == "training time (minutes)" and images_loss.get_xlabel() == "training images seen"
    assert time_loss.get_yscale() == "log" and time_loss.get_xscale() == "log"
    assert time_psnr.get_ylim()[0] == pytest.approx(25.0)  # 10 dB under bicubic: srgan's 23 dB is below, and named
    assert any("below the axis: srgan (23.0 dB)" in text.get_text() for text in time_psnr.texts)
    assert smallest_text_px(figure) >= 9
    save_figure(figure, tmp_path / "curves.png")
    with Image.open(tmp_path / "curves.png") as image:
        assert image.width == 1500


def test_a_history_without_images_seen_is_refused_by_name(tmp_path: Path) -> None:
    old = tmp_path / "vdsr.csv"
    _write_history(old, seconds_per_step=1.0, batch=4, columns=("step", "seconds", "loss", "lr", "val_psnr_y"))
    with pytest.raises(SrbenchError, match=r"vdsr\.csv: no images column"):
        training_curves_figure({"vdsr": [old]}, baseline_psnr=30.0)


def test_training_curves_draw_each_seed_in_its_models_colour(tmp_path: Path) -> None:
    seeds = [tmp_path / "srcnn0.csv", tmp_path / "srcnn1.csv"]
    _write_history(seeds[0], seconds_per_step=6.0, batch=16)
    _write_history(seeds[1], seconds_per_step=5.0, batch=16, psnr_offset=1.0)
    _write_history(tmp_path / "srgan.csv", seconds_per_step=0.5, batch=4)
    figure = training_curves_figure({"srcnn": seeds, "srgan": [tmp_path / "srgan.csv"]}, baseline_psnr=35.0)
    time_psnr = figure.axes[0]
    srcnn = [line for line in time_psnr.get_lines() if line.get_color() == time_psnr.get_lines()[0].get_color()]
    assert len(srcnn) == 2 and [line.get_label() for line in srcnn][0] == "srcnn"
    assert list(srcnn[1].get_xdata()) == pytest.approx([2.5, 5.0, 7.5])  # the second seed: 30 steps x 5 s
    labels = [label for label in time_psnr.get_legend_handles_labels()[1]]
    assert labels == ["srcnn", "srgan", "bicubic"]  # one legend entry per model


def test_the_mean_table_shows_the_spread_over_seeds_when_there_is_one() -> None:
    row = ROW | {"psnr_y_sd": 0.0412, "ssim_y_sd": 0.00123, "psnr_rgb_sd": 0.1}
    assert cells(markdown_table([row]))[0][3:6] == ["37.12 ± 0.04", "0.9568 ± 0.0012", "35.50 ± 0.10"]
    assert cells(markdown_table([ROW]))[0][3:6] == ["37.12", "0.9568", "35.50"]
    assert seeds_line([0]).startswith("One seed (`train.seeds` = [0])")
    assert seeds_line([0, 1, 2]).startswith("Mean ± sample standard deviation over 3 seeds (`train.seeds` = [0, 1, 2])")


def test_the_cost_table_adds_the_model_a_gan_starts_from() -> None:
    card = {"device": "cuda", "device_name": "Test GPU", "precision": "bf16"}
    costs = {
        "srresnet": {"training_seconds": 118.0, "wall_seconds": 125.0, "images_seen": 3200, "steps_per_second": 3.4, "peak_host_memory_mb": 1024.0,
                     "peak_gpu_memory_mb": 512.0, "gpu_hours": 0.0347},
        "srgan": {"training_seconds": 25.0, "wall_seconds": 31.0, "images_seen": 240, "steps_per_second": 1.2, "peak_host_memory_mb": 2048.0,
                  "peak_gpu_memory_mb": 1536.0, "gpu_hours": 0.0086},
    }
    rows = {row[0]: row for row in cells(cost_table(costs, {"srresnet": card, "srgan": card}, {"srgan": "srresnet"}).split("\n\n")[0])}
    assert rows["srresnet"] == ["srresnet", "1m58s", "2m05s", "cuda (Test GPU)", "bf16", "3,200", "3.40", "1.00 GiB", "0.50 GiB", "0.035"]
    assert rows["srgan"][1:3] == ["2m23s (srresnet 1m58s + 25s)", "2m36s (srresnet 2m05s + 31s)"]
    assert rows["srgan"][5] == "3,440 (srresnet 3,200 + 240)" and rows["srgan"][6:9] == ["1.20", "2.00 GiB", "1.50 GiB"]  # its own run
    assert rows["srgan"][9] == "0.043 (srresnet 0.035 + 0.009)"
