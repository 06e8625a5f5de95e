"""Prepared data: training patches in a memory-mapped store, whole validation images as PNG pairs
(batches of patches: :mod:`srbench.sampling`).

Layout written by :func:`prepare` (``out_dir``)::

    train_hr.npy, train_lr.npy   uint8 arrays (N, P, P, 3) and (N, P/s, P/s, 3)
    valid/HR/<name>.png, valid/LR/<name>.png
    benchmark/<set>/HR/<name>.png, benchmark/<set>/LR/<name>.png   (when data/raw has benchmark sets)
    meta.json                    data set, scale, patch size, stride, counts, where the LR images came from,
                                 the rounding of our bicubic degradation (srbench.degradation)
"""

import json
import logging
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from srbench.degradation import ROUNDINGS, Rounding, degrade, modcrop
from srbench.errors import InvalidImageError, SrbenchError
from srbench.images import image_size, list_images, read_image, write_png

logger = logging.getLogger(__name__)


def make_pair(
    hr_path: Path, scale: int, lr_dir: Path | None, rounding: Rounding = "per_pass"
) -> tuple[np.ndarray, np.ndarray]:
    """HR (mod-cropped) and LR images for one file: the shipped LR file when ``lr_dir`` has one,
    else MATLAB-compatible bicubic degradation of the HR image, rounded by ``rounding``."""
    hr = read_image(hr_path)
    lr_path = lr_dir / f"{hr_path.stem}.png" if lr_dir is not None else None
    if lr_path is not None and lr_path.is_file():
        lr = read_image(lr_path)
        hr = hr[: lr.shape[0] * scale, : lr.shape[1] * scale]
        if hr.shape[0] != lr.shape[0] * scale or hr.shape[1] != lr.shape[1] * scale:
            raise InvalidImageError(f"{lr_path}: LR size {lr.shape[1]}x{lr.shape[0]} does not match HR {hr_path} at x{scale}")
        return hr, lr
    hr = modcrop(hr, scale)
    return hr, degrade(hr, scale, rounding)


def _pair_size(hr_path: Path, scale: int, lr_dir: Path | None) -> tuple[int, int]:
    """(height, width) of the HR image :func:`make_pair` returns, from the file headers alone."""
    lr_path = lr_dir / f"{hr_path.stem}.png" if lr_dir is not None else None
    if lr_path is not None and lr_path.is_file():
        width, height = image_size(lr_path)
        return height * scale, width * scale
    width, height = image_size(hr_path)
    return height - height % scale, width - width % scale


def _patch_corners(height: int, width: int, patch_size: int, stride: int) -> list[tuple[int, int]]:
    return [
        (top, left)
        for top in range(0, height - patch_size + 1, stride)
        for left in range(0, width - patch_size + 1, stride)
    ]


def _cut_patches(job: tuple[Path, int, Path | None, Rounding, int, int]) -> tuple[np.ndarray, np.ndarray]:
    hr_path, scale, lr_dir, rounding, patch_size, stride = job
    hr, lr = make_pair(hr_path, scale, lr_dir, rounding)
    corners = _patch_corners(hr.shape[0], hr.shape[1], patch_size, stride)
    lr_size = patch_size // scale
    hr_patches = np.stack([hr[t : t + patch_size, l : l + patch_size] for t, l in corners]) if corners else np.empty((0, patch_size, patch_size, 3), np.uint8)
    lr_patches = (
        np.stack([lr[t // scale : t // scale + lr_size, l // scale : l // scale + lr_size] for t, l in corners])
        if corners
        else np.empty((0, lr_size, lr_size, 3), np.uint8)
    )
    return hr_patches, lr_patches


def _valid_pair(job: tuple[Path, int, Path | None, Rounding, Path]) -> str:
    hr_path, scale, lr_dir, rounding, out_dir = job
    hr, lr = make_pair(hr_path, scale, lr_dir, rounding)
    write_png(out_dir / "HR" / f"{hr_path.stem}.png", hr)
    write_png(out_dir / "LR" / f"{hr_path.stem}.png", lr)
    return hr_path.stem


def _official_lr_dir(raw_dir: Path, split: str, scale: int) -> Path | None:
    folder = raw_dir / split / "LR_bicubic" / f"X{scale}"
    return folder if folder.is_dir() else None


def _benchmark_jobs(
    raw_dir: Path, scale: int, rounding: Rounding, tmp_dir: Path
) -> dict[str, list[tuple[Path, int, Path | None, Rounding, Path]]]:
    """Jobs writing each benchmark set of ``raw_dir/benchmark`` (HR plus official LR) as test pairs."""
    jobs = {}
    for set_dir in sorted(path for path in (raw_dir / "benchmark").glob("*") if path.is_dir()):
        images = list_images(set_dir / "HR")
        if not images:
            raise SrbenchError(f"{set_dir / 'HR'}: no images in this benchmark set")
        lr_dir = _official_lr_dir(raw_dir / "benchmark", set_dir.name, scale)
        jobs[set_dir.name] = [(path, scale, lr_dir, rounding, tmp_dir / "benchmark" / set_dir.name) for path in images]
    return jobs


def prepare(
    raw_dir: Path,
    out_dir: Path,
    scale: int,
    patch_size: int,
    stride: int,
    workers: int,
    dataset: str = "unnamed",
    rounding: Rounding = "per_pass",
) -> dict:
    """Cut training patches and write validation and benchmark pairs from a raw data directory;
    returns the metadata.

    ``raw_dir`` has ``{train,valid}/HR/*.png`` and, optionally, official LR images in
    ``{train,valid}/LR_bicubic/X<scale>/`` and benchmark sets in ``benchmark/<set>/HR`` (with
    ``benchmark/<set>/LR_bicubic/X<scale>``). ``dataset`` names the data in the metadata;
    ``rounding`` is how LR images made here (where no official ones exist) are rounded.
    Everything is written next to ``out_dir`` first and renamed into place at the end.
    """
    if patch_size % scale:
        raise SrbenchError(f"prepare.patch_size={patch_size} is not a multiple of prepare.scale={scale}")
    train_images = list_images(raw_dir / "train" / "HR")
    valid_images = list_images(raw_dir / "valid" / "HR")
    if not train_images or not valid_images:
        raise SrbenchError(f"{raw_dir}: needs images in train/HR and valid/HR (run srbench download)")

    train_lr_dir = _official_lr_dir(raw_dir, "train", scale)
    valid_lr_dir = _official_lr_dir(raw_dir, "valid", scale)
    # Patches go straight into the memory-mapped store as each image is cut: the patch count
    # comes from the image headers, so no more than one image's patches is held in RAM.
    counts = [len(_patch_corners(*_pair_size(path, scale, train_lr_dir), patch_size, stride)) for path in train_images]
    count = sum(counts)
    if count == 0:
        raise SrbenchError(f"{raw_dir}/train/HR: no image is at least prepare.patch_size={patch_size} pixels on each side")
    tmp_dir = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with context.Pool(max(1, workers)) as pool:
        jobs = [(path, scale, valid_lr_dir, rounding, tmp_dir / "valid") for path in valid_images]
        valid_names = pool.map(_valid_pair, jobs)
        logger.info("validation: %d image pairs written", len(valid_names))
        benchmark = {}
        for set_name, set_jobs in _benchmark_jobs(raw_dir, scale, rounding, tmp_dir).items():
            benchmark[set_name] = len(pool.map(_valid_pair, set_jobs))
            logger.info("benchmark %s: %d image pairs written", set_name, benchmark[set_name])

        lr_size = patch_size // scale
        hr_store = open_memmap(tmp_dir / "train_hr.npy", mode="w+", dtype=np.uint8, shape=(count, patch_size, patch_size, 3))
        lr_store = open_memmap(tmp_dir / "train_lr.npy", mode="w+", dtype=np.uint8, shape=(count, lr_size, lr_size, 3))
        offset = 0
        jobs = [(path, scale, train_lr_dir, rounding, patch_size, stride) for path in train_images]
        for index, (hr, lr) in enumerate(pool.imap(_cut_patches, jobs)):
            if len(hr) != counts[index]:
                raise SrbenchError(f"{train_images[index]}: cut {len(hr)} patches, expected {counts[index]} from its size")
            hr_store[offset : offset + len(hr)] = hr
            lr_store[offset : offset + len(lr)] = lr
            offset += len(hr)
            logger.info("training patches: image %d/%d (%s): %d patches", index + 1, len(jobs), train_images[index].name, len(hr))
    hr_store.flush()
    lr_store.flush()
    del hr_store, lr_store

    meta = {
        "dataset": dataset,
        "scale": scale,
        "patch_size": patch_size,
        "stride": stride,
        "train_images": len(train_images),
        "train_patches": count,
        "valid_images": valid_names,
        "benchmark_images": benchmark,
        "lr_source": "official" if train_lr_dir else "matlab_bicubic",
        "bicubic_rounding": rounding,
    }
    (tmp_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp_dir, out_dir)
    logger.info("prepared %d patches and %d validation pairs in %.1fs", count, len(valid_names), time.perf_counter() - started)
    return meta


def read_meta(prepared_dir: Path) -> dict:
    """The metadata that :func:`prepare` wrote."""
    path = prepared_dir / "meta.json"
    if not path.is_file():
        raise SrbenchError(f"{path}: prepared data not found (run srbench prepare)")
    return json.loads(path.read_text())


def bicubic_rounding(prepared_dir: Path) -> Rounding:
    """How the prepared data rounded its bicubic resizes (``meta.json``), so that the bicubic
    baseline and pairs made from other HR images are made alike; ``per_pass`` when there is no
    prepared data or its ``meta.json`` predates the key."""
    path = prepared_dir / "meta.json"
    rounding = read_meta(prepared_dir).get("bicubic_rounding", "per_pass") if path.is_file() else "per_pass"
    if rounding not in ROUNDINGS:
        raise SrbenchError(f"{path}: bicubic_rounding = {rounding!r}: choose one of {', '.join(ROUNDINGS)}")
    return rounding


@dataclass(frozen=True)
class ImagePair:
    """A whole validation or test image: its name, LR and HR uint8 arrays."""

    name: str
    lr: np.ndarray
    hr: np.ndarray


def load_pairs(folder: Path) -> list[ImagePair]:
    """The ``HR``/``LR`` PNG pairs of a prepared validation folder."""
    hr_paths = list_images(folder / "HR")
    if not hr_paths:
        raise SrbenchError(f"{folder / 'HR'}: no images")
    return [ImagePair(p.stem, read_image(folder / "LR" / p.name), read_image(p)) for p in hr_paths]


def pairs_from_hr_folder(folder: Path, scale: int, rounding: Rounding = "per_pass") -> list[ImagePair]:
    """Test pairs from any folder of HR images, degraded like the training data (pass its ``rounding``)."""
    images = list_images(folder)
    if not images:
        raise SrbenchError(f"{folder}: no PNG or JPEG images")
    return [ImagePair(path.stem, *reversed(make_pair(path, scale, None, rounding))) for path in images]
