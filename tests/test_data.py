"""The patch store: layout, official LR images, benchmark pairs, bad input."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.outputs import OutputError
from pipeline.params import ParamError
from pipeline.prepare import prepare as prepare_stage
from pipeline.process import WorkspaceBusy, workspace_lock
from srbench.data import load_pairs, min_test_side, pairs_from_hr_folder, prepare, read_meta
from srbench.degradation import degrade, modcrop
from srbench.errors import InvalidImageError, SrbenchError
from srbench.images import read_image, write_png
from srbench.inference import bicubic_upscaler, evaluate_pairs
from srbench.metrics import sr_metrics
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


def test_prepare_and_evaluate_log_their_progress_in_lines(
    tmp_path: Path, raw_samples: Path, prepared_x2: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SRBENCH_PROGRESS", "lines")
    with caplog.at_level("INFO"):
        meta = prepare(raw_samples, tmp_path / "prepared", scale=2, patch_size=32, stride=16, workers=1)
        evaluate_pairs(bicubic_upscaler(2), load_pairs(prepared_x2 / "valid"), 2, description="evaluate bicubic on valid")
        evaluate_pairs(bicubic_upscaler(2), load_pairs(prepared_x2 / "valid"), 2, description=None)  # silent
    ends = [message for message in caplog.messages if "(100%, " in message]
    assert [message.split(" (")[0] for message in ends] == [
        "prepare valid: 2/2 images", f"prepare training patches: {meta.train_images}/{meta.train_images} images", "evaluate bicubic on valid: 2/2 images"
    ]
    assert ends[1].endswith(f"eta 0m00s) patches {meta.train_patches}")
    assert sum(message.startswith("evaluate bicubic on valid: ") for message in caplog.messages) == 2  # 0% and 100%


def test_prepare_degrades_with_the_rounding_asked_for(tmp_path: Path, raw_samples: Path, prepared_x2: Path) -> None:
    out = tmp_path / "prepared"
    meta = prepare(raw_samples, out, scale=2, patch_size=32, stride=16, workers=1, rounding="once")
    assert meta.bicubic_rounding == json.loads((out / "meta.json").read_text())["bicubic_rounding"] == "once"
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
    assert meta.lr_source == "official"

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
    assert meta.benchmark_images == {"B100": 1, "Set5": 1} and meta.dataset == "samples"
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


def raw_folder(root: Path, sizes: dict[str, tuple[int, int]]) -> Path:
    """A raw data folder of random images: ``{"train/HR/a.png": (height, width), ...}``."""
    rng = np.random.default_rng(4)
    for name, (height, width) in sizes.items():
        write_png(root / name, rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return root


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name != "prepared")


@pytest.mark.parametrize("scale, side", [(2, 16), (3, 18), (4, 20)])
def test_the_smallest_test_image_is_the_smallest_the_metrics_score(scale: int, side: int) -> None:
    assert min_test_side(scale) == side  # a scale-px border shaved from each side leaves 11 x 11 px for SSIM's window
    smallest = np.zeros((side, side + 3, 3), np.uint8)
    assert sr_metrics(smallest, smallest, scale)["ssim_y"] == 1.0
    below = np.zeros((side - scale, side + 3, 3), np.uint8)  # the next smaller mod-cropped size
    with pytest.raises(ValueError, match="SSIM needs at least 11"):
        sr_metrics(below, below, scale)


@pytest.mark.parametrize(
    "name, size, message",
    [
        ("train/HR/b.png", (1, 1), "train/HR/b.png: 1x1 px is too small to degrade at x2 (at least 2x2 px)"),
        ("valid/HR/b.png", (10, 10), "valid/HR/b.png: too small to evaluate at x2: 10x10 px (mod-cropped to a multiple of 2); PSNR and SSIM need at least 16x16 px"),
        ("valid/HR/b.png", (40, 15), "valid/HR/b.png: too small to evaluate at x2: 14x40 px"),
        ("benchmark/Set5/HR/b.png", (15, 40), "benchmark/Set5/HR/b.png: too small to evaluate at x2: 40x14 px"),
    ],
)
def test_an_image_too_small_is_refused_before_any_work(tmp_path: Path, name: str, size: tuple[int, int], message: str) -> None:
    raw = raw_folder(tmp_path / "raw", {"train/HR/a.png": (40, 40), "valid/HR/a.png": (40, 40), name: size})
    out = tmp_path / "out" / "prepared"
    raw_folder(out, {"valid/HR/old.png": (4, 4)})  # the previous prepared data
    with pytest.raises(InvalidImageError) as error:
        prepare(raw, out, scale=2, patch_size=16, stride=8, workers=1)
    assert str(error.value).startswith(f"{raw}/{message}") and "\n" not in str(error.value)
    assert leftovers(out.parent) == [] and [p.name for p in out.rglob("*.png")] == ["old.png"]


def test_an_image_of_the_smallest_size_is_prepared_and_evaluated(tmp_path: Path) -> None:
    raw = raw_folder(tmp_path / "raw", {"train/HR/a.png": (40, 40), "valid/HR/a.png": (23, 20), "benchmark/Set5/HR/b.png": (21, 20)})
    meta = prepare(raw, tmp_path / "prepared", scale=4, patch_size=16, stride=8, workers=1)
    assert meta.benchmark_images == {"Set5": 1} and meta.valid_images == ["a"]
    for folder in ("valid", "benchmark/Set5"):
        pairs = load_pairs(tmp_path / "prepared" / folder)
        per_image, _, _ = evaluate_pairs(bicubic_upscaler(4), pairs, 4)
        assert {pair.hr.shape for pair in pairs} == {(20, 20, 3)} and len(per_image) == 1
    assert json.loads((tmp_path / "prepared" / "meta.json").read_text()) == dataclasses.asdict(meta)


def truncated_png(path: Path, size: tuple[int, int]) -> None:
    """A PNG whose header is whole (its size reads) but whose pixels are cut off."""
    write_png(path, np.random.default_rng(5).integers(0, 256, (*size, 3), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("failure", ["truncated image", "interrupted"])
def test_a_failed_prepare_leaves_the_previous_output_and_no_staging_folder(
    tmp_path: Path, failure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = raw_folder(tmp_path / "raw", {"train/HR/a.png": (40, 40), "valid/HR/a.png": (40, 40)})
    out = tmp_path / "data" / "prepared"
    prepare(raw, out, scale=2, patch_size=16, stride=8, workers=1)
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    raw_folder(raw, {"train/HR/b.png": (48, 48)})
    if failure == "truncated image":
        truncated_png(raw / "train" / "HR" / "c.png", (40, 40))
        with pytest.raises(InvalidImageError, match="c.png: cannot read image"):
            prepare(raw, out, scale=2, patch_size=16, stride=8, workers=1)
    else:
        def interrupted(job: tuple) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr("srbench.data._cut_patches", interrupted)
        with pytest.raises(KeyboardInterrupt):
            prepare(raw, out, scale=2, patch_size=16, stride=8, workers=1)
    assert leftovers(out.parent) == []
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before


def test_pairs_too_small_to_evaluate_are_refused(tmp_path: Path) -> None:
    raw_folder(tmp_path / "hr", {"a.png": (40, 40), "b.png": (10, 30)})
    with pytest.raises(InvalidImageError, match=r"hr/b.png: too small to evaluate at x2: 30x10 px"):
        pairs_from_hr_folder(tmp_path / "hr", 2)
    raw_folder(tmp_path / "valid", {"HR/a.png": (40, 40), "LR/a.png": (20, 20), "HR/b.png": (12, 12), "LR/b.png": (6, 6)})
    with pytest.raises(InvalidImageError, match=r"valid/HR/b.png: too small to evaluate at x2: 12x12 px"):
        load_pairs(tmp_path / "valid")
    raw_folder(tmp_path / "valid", {"HR/b.png": (40, 40), "LR/b.png": (21, 20)})
    with pytest.raises(InvalidImageError, match=r"valid/LR/b.png: LR size 20x21 does not match HR .*b.png \(40x40\)"):
        load_pairs(tmp_path / "valid")


def stage_params(tmp_path: Path, **values: object) -> Path:
    path = tmp_path / "params.yaml"
    prepare_section = {"scale": 2, "patch_size": 16, "stride": 8, "workers": 1, "bicubic_rounding": "per_pass"} | values
    path.write_text(yaml.safe_dump({"prepare": prepare_section}))
    return path


def test_the_prepare_stage_refuses_bad_input_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the workspace: its lock and MLflow store
    raw = raw_folder(tmp_path / "raw", {"train/HR/a.png": (40, 40), "valid/HR/a.png": (40, 40), "train/HR/b.png": (1, 1)})
    out = tmp_path / "data" / "prepared"
    with pytest.raises(ParamError, match=r"params.yaml: prepare.scale = 2.0: choose one of 2, 3, 4$"):
        prepare_stage(stage_params(tmp_path, scale=2.0), raw, out)
    with pytest.raises(InvalidImageError, match=r"train/HR/b.png: 1x1 px is too small to degrade at x2"):
        prepare_stage(stage_params(tmp_path), raw, out)
    with workspace_lock("prepare"), pytest.raises(WorkspaceBusy, match=r"prepare \(pid \d+\) is already running in this workspace"):
        prepare_stage(stage_params(tmp_path), raw, out)
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # no MLflow run
    assert list((tmp_path / "data").iterdir()) == []


def test_the_prepare_stage_checks_its_output_folder_is_writable_first(tmp_path: Path, read_only_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    raw = raw_folder(tmp_path / "raw", {"train/HR/a.png": (40, 40), "valid/HR/a.png": (40, 40)})
    with pytest.raises(OutputError, match=rf"{read_only_dir}: cannot write here"):
        prepare_stage(stage_params(tmp_path), raw, read_only_dir / "prepared")
    assert not (tmp_path / "mlruns").exists()


def test_the_prepared_metadata_is_read_once_into_a_checked_object(prepared_x2: Path, tmp_path: Path) -> None:
    meta = read_meta(prepared_x2)
    assert meta.scale == 2 and meta.patch_size == 32 and meta.bicubic_rounding == "per_pass" and meta.valid_images == ["motorcycle_left", "retina"]
    for text, message in (
        ('{"scale": 2}', "not the metadata of srbench prepare"),
        (json.dumps({**json.loads((prepared_x2 / "meta.json").read_text()), "scale": "2"}), "scale = '2': expected int"),
        (json.dumps({**json.loads((prepared_x2 / "meta.json").read_text()), "bicubic_rounding": "never"}), "bicubic_rounding = 'never': choose one of"),
        (json.dumps({**json.loads((prepared_x2 / "meta.json").read_text()), "valid_images": "a"}), "valid_images = 'a': expected list"),
        (b"\xff\xfe\x00", "not the metadata of srbench prepare"),
    ):
        path = tmp_path / "meta.json"
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
        with pytest.raises(SrbenchError, match=message):
            read_meta(tmp_path)
