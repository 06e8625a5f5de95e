"""The report's pieces: the Markdown table, the published numbers, the figures."""

from pathlib import Path

import numpy as np
from PIL import Image

from srbench.images import write_png
from srbench.published import PUBLISHED, published
from srbench.reporting import comparison_figure, markdown_table

ROW = {"name": "vdsr", "n_parameters": 668227, "training_seconds": 128.4, "psnr_y": 37.1234, "ssim_y": 0.95678, "psnr_rgb": 35.5, "megapixels_per_second": 0.0912}


def cells(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_table_shows_lpips_as_unavailable_not_zero_and_published_numbers_beside() -> None:
    rows = [
        {**ROW, "name": "bicubic", "n_parameters": 0, "training_seconds": None, "lpips": None, "published": (33.66, 0.9299)},
        {**ROW, "lpips": 0.123456, "published": None},
    ]
    bicubic, vdsr = cells(markdown_table(rows))
    assert bicubic == ["bicubic", "0", "–", "37.12", "0.9568", "35.50", "n/a", "0.09", "33.66 / 0.9299"]
    assert vdsr == ["vdsr", "668,227", "2m08s", "37.12", "0.9568", "35.50", "0.1235", "0.09", "–"]


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
