"""The patch store: layout, official LR images, benchmark pairs, bad input."""

import json
from pathlib import Path

import numpy as np
import pytest

from srbench.data import load_pairs, pairs_from_hr_folder, prepare
from srbench.images import read_image, write_png
from srbench.degradation import degrade, modcrop
from srbench.errors import InvalidImageError, SrbenchError
from srbench.sampling import PatchSampler


def block_mean_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    h, w, _ = hr.shape
    blocks = hr.reshape(h // scale, scale, w // scale, scale, 3).astype(np.float64)
    return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)


def test_prepare_writes_patches_validation_pairs_and_meta(prepared_x2: Path, raw_samples: Path) -> None:
    meta = json.loads((prepared_x2 / "meta.json").read_text())
    hr = np.load(prepared_x2 / "train_hr.npy", mmap_mode="r")
    lr = np.load(prepared_x2 / "train_lr.npy", mmap_mode="r")
    assert meta["scale"] == 2 and meta["lr_source"] == "matlab_bicubic" and meta["bicubic_rounding"] == "per_pass"
    assert hr.shape[1:] == (32, 32, 3) and lr.shape[1:] == (16, 16, 3)
    assert len(hr) == len(lr) == meta["train_patches"] > 0
    # 64x64 crops, 32-px patches every 16 px: 3 x 3 patches per training image
    assert meta["train_patches"] == 9 * meta["train_images"]
    for pair in load_pairs(prepared_x2 / "valid"):
        source = modcrop(read_image(raw_samples / "valid" / "HR" / f"{pair.name}.png"), 2)
        assert np.array_equal(pair.hr, source)
        assert np.array_equal(pair.lr, degrade(source, 2))


def test_prepare_degrades_with_the_rounding_asked_for(tmp_path: Path, raw_samples: Path, prepared_x2: Path) -> None:
    out = tmp_path / "prepared"
    meta = prepare(raw_samples, out, scale=2, patch_size=32, stride=16, workers=1, rounding="once")
    assert meta["bicubic_rounding"] == json.loads((out / "meta.json").read_text())["bicubic_rounding"] == "once"
    differ = 0
    for pair, per_pass in zip(load_pairs(out / "valid"), load_pairs(prepared_x2 / "valid")):
        assert np.array_equal(pair.lr, degrade(pair.hr, 2, "once"))
        differ += int(np.sum(pair.lr != per_pass.lr))
    assert differ > 0
    # The patch store is cut from the same LR images.
    assert np.array_equal(np.load(out / "train_hr.npy"), np.load(prepared_x2 / "train_hr.npy"))
    assert not np.array_equal(np.load(out / "train_lr.npy"), np.load(prepared_x2 / "train_lr.npy"))


def test_official_lr_images_are_used_as_they_are(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    raw = tmp_path / "raw"
    for split in ("train", "valid"):
        hr = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
        write_png(raw / split / "HR" / "0001.png", hr)
        write_png(raw / split / "LR_bicubic" / "X2" / "0001.png", block_mean_lr(hr, 2))
    out = tmp_path / "prepared"
    meta = prepare(raw, out, scale=2, patch_size=16, stride=8, workers=1)
    assert meta["lr_source"] == "official"

    sampler = PatchSampler(out, batch_size=8, crop_size=8, seed=3)
    for step in (1, 2, 3):
        lr, hr = sampler.batch(step)
        assert lr.shape == (8, 3, 4, 4) and hr.shape == (8, 3, 8, 8)
        hr_u8 = (hr * 255).round().byte().permute(0, 2, 3, 1).numpy()
        lr_u8 = (lr * 255).round().byte().permute(0, 2, 3, 1).numpy()
        for lr_patch, hr_patch in zip(lr_u8, hr_u8):  # crops, flips and rotations keep LR and HR aligned
            assert np.array_equal(lr_patch, block_mean_lr(hr_patch, 2))


def test_benchmark_sets_become_test_pairs_with_their_official_lr(tmp_path: Path, raw_samples: Path) -> None:
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(raw_samples, raw)
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, size=(50, 37, 3), dtype=np.uint8)  # not a multiple of 4: mod-cropped to 48 x 36
    write_png(raw / "benchmark" / "Set5" / "HR" / "baby.png", hr)
    write_png(raw / "benchmark" / "Set5" / "LR_bicubic" / "X4" / "baby.png", block_mean_lr(hr[:48, :36], 4))
    write_png(raw / "benchmark" / "B100" / "HR" / "3096.png", hr)  # no official LR: degraded here
    meta = prepare(raw, tmp_path / "prepared", scale=4, patch_size=32, stride=32, workers=1, dataset="samples")
    assert meta["benchmark_images"] == {"B100": 1, "Set5": 1} and meta["dataset"] == "samples"
    [set5] = load_pairs(tmp_path / "prepared" / "benchmark" / "Set5")
    assert np.array_equal(set5.hr, hr[:48, :36]) and np.array_equal(set5.lr, block_mean_lr(hr[:48, :36], 4))
    [b100] = load_pairs(tmp_path / "prepared" / "benchmark" / "B100")
    assert np.array_equal(b100.lr, degrade(hr[:48, :36], 4))


def test_prepare_refuses_bad_input_before_writing(tmp_path: Path) -> None:
    with pytest.raises(SrbenchError, match="not a multiple"):
        prepare(tmp_path, tmp_path / "out", scale=3, patch_size=32, stride=16, workers=1)
    with pytest.raises(SrbenchError, match="image folder not found"):
        prepare(tmp_path / "missing", tmp_path / "out", scale=2, patch_size=32, stride=16, workers=1)
    for split in ("train", "valid"):
        write_png(tmp_path / "small" / split / "HR" / "a.png", np.zeros((20, 40, 3), np.uint8))
    with pytest.raises(SrbenchError, match="no image is at least prepare.patch_size=32"):
        prepare(tmp_path / "small", tmp_path / "out", scale=2, patch_size=32, stride=16, workers=1)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.tmp").exists()


def test_hr_folder_pairs_and_unreadable_image(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", np.full((21, 30, 3), 77, np.uint8))
    (pair,) = pairs_from_hr_folder(tmp_path, 4)
    assert pair.hr.shape == (20, 28, 3) and pair.lr.shape == (5, 7, 3)
    assert (pair.lr == 77).all()
    noise = np.random.default_rng(2).integers(40, 216, (24, 32, 3), dtype=np.uint8)
    write_png(tmp_path / "b.png", noise)
    for rounding in ("per_pass", "once"):
        _, noisy = pairs_from_hr_folder(tmp_path, 4, rounding)
        assert np.array_equal(noisy.lr, degrade(noise, 4, rounding))
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InvalidImageError, match="broken.jpg"):
        pairs_from_hr_folder(tmp_path, 4)
