"""Tiled upscaling: the result of one pass over the whole image, with no seams, in bounded memory
(bicubic too, to the bit); `srbench upscale` takes folders and glob patterns and shows its tiles."""

import logging

import numpy as np
import pytest
import torch
from torch import nn

from srbench.degradation import upscale_bicubic
from srbench.images import read_image, write_png
from srbench.inference import model_upscaler
from srbench.models import build_model
from srbench.tiling import receptive_radius, tiled_bicubic, tiled_upscaler

CPU = torch.device("cpu")
SMALL = {
    "srcnn": {"n1": 8, "n2": 4, "f1": 9, "f2": 1, "f3": 5},
    "vdsr": {"depth": 6, "num_filters": 8},
    "srresnet": {"num_features": 8, "num_blocks": 3},
    "srgan-seed": {"num_features": 8, "num_blocks": 2},
}


def lr_image(height: int = 70, width: int = 90) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("scale", [2, 4])
def test_tiles_give_the_whole_images_result(name: str, scale: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, scale, SMALL[name]).eval()
    whole = model_upscaler(model, CPU)(lr_image()).astype(int)
    tiled = tiled_upscaler(model, CPU, scale, tile=32)(lr_image()).astype(int)  # 3 x 3 tiles
    difference = np.abs(whole - tiled)
    # Tiles of another size sum in another order: a rare pixel rounds the other way, never a seam.
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-4


@pytest.mark.parametrize("name", ["srcnn", "vdsr"])
def test_tiles_of_a_luma_model_give_the_whole_images_result(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 2, SMALL[name], channels="y").eval()
    whole = model_upscaler(model, CPU)(lr_image()).astype(int)
    tiled = tiled_upscaler(model, CPU, 2, tile=32)(lr_image()).astype(int)
    difference = np.abs(whole - tiled)
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-4


def test_without_a_margin_the_tiles_show_seams() -> None:
    torch.manual_seed(0)
    model = build_model("vdsr", 2, SMALL["vdsr"]).eval()
    whole = model_upscaler(model, CPU)(lr_image()).astype(int)
    seams = tiled_upscaler(model, CPU, 2, tile=32, margin=0)(lr_image()).astype(int)
    assert np.abs(whole - seams).max() > 10


def test_the_receptive_radius_of_a_stack_of_convolutions() -> None:
    """Four 3x3 convolutions reach 4 pixels; a 9x9 one after them, 4 more."""
    stack = nn.Sequential(*(nn.Conv2d(3, 3, 3, padding=1) for _ in range(4)))
    assert receptive_radius(stack, 1, CPU) == 4
    assert receptive_radius(nn.Sequential(stack, nn.Conv2d(3, 3, 9, padding=4)), 1, CPU, probe=8) == 8  # the probe widens


def test_tiles_report_progress() -> None:
    model = build_model("srcnn", 2, SMALL["srcnn"]).eval()
    seen = []
    tiled_upscaler(model, CPU, 2, tile=32)(lr_image(), on_tile=lambda done, total: seen.append((done, total)))
    assert seen == [(index, 9) for index in range(1, 10)]


def test_upscale_takes_folders_and_patterns(tmp_path, monkeypatch, srbench_here) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("a", "b"):
        write_png(tmp_path / "photos" / f"{name}.png", lr_image(12, 16))
    write_png(tmp_path / "more" / "c.png", lr_image(12, 16))
    status, stderr = srbench_here("upscale", "--model", "bicubic", "--scale", "2", "photos", "more/*.png", "--out", "out")
    assert status == 0, stderr
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "c.png"]
    assert read_image(tmp_path / "out" / "c.png").shape == (24, 32, 3)
    status, stderr = srbench_here("upscale", "--model", "bicubic", "--scale", "2", "nothing/*.png", "--out", "out")
    assert status == 2 and "srbench: error: nothing/*.png: no file matches this pattern" in stderr


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("rounding", ["per_pass", "once"])
def test_bicubic_in_tiles_is_bicubic_over_the_whole_image(scale: int, rounding: str) -> None:
    image = lr_image(45, 71)
    whole = upscale_bicubic(image, scale, rounding)
    tiled = tiled_bicubic(scale, rounding, tile=16)(image)  # 3 x 5 tiles, the last ones partial
    assert tiled.dtype == np.uint8 and np.array_equal(tiled, whole)
    assert np.array_equal(tiled_bicubic(scale, rounding, tile=7)(image[:, :, 0]), upscale_bicubic(image[:, :, 0], scale, rounding))  # grey too
    bands = list(tiled_bicubic(scale, rounding, tile=16).bands(image))
    assert [len(band) for band in bands] == [16 * scale, 16 * scale, 13 * scale] and np.array_equal(np.concatenate(bands), whole)


def test_bicubic_tiles_need_their_margin() -> None:
    image = lr_image(45, 71)
    seams = tiled_bicubic(4, tile=16, margin=0)(image)
    assert not np.array_equal(seams, upscale_bicubic(image, 4))


def test_upscale_shows_its_tiles_and_equals_one_pass(tmp_path, monkeypatch, srbench_here, caplog) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SRBENCH_PROGRESS", "lines")
    write_png(tmp_path / "photo.png", lr_image(40, 50))
    with caplog.at_level(logging.INFO):
        status, stderr = srbench_here("upscale", "--model", "bicubic", "--scale", "4", "--tile", "16", "photo.png", "--out", "out")
    assert status == 0, stderr
    assert np.array_equal(read_image(tmp_path / "out" / "photo.png"), upscale_bicubic(lr_image(40, 50), 4))
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].startswith("1/1 photo.png: 0/12 tiles (0%, ")
    assert messages[1].startswith("1/1 photo.png: 12/12 tiles (100%, ")
    assert messages[2] == "1/1 photo.png (50x40) -> out/photo.png (200x160, x4)"
