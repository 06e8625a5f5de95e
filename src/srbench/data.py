"""Prepared data: training patches in a memory-mapped store, whole validation images as PNG pairs
(batches of patches: :mod:`srbench.sampling`).

Layout written by :func:`prepare` (``out_dir``)::

    train_hr.npy, train_lr.npy   uint8 arrays (N, P, P, 3) and (N, P/s, P/s, 3)
    valid/HR/<name>.png, valid/LR/<name>.png
    benchmark/<set>/HR/<name>.png, benchmark/<set>/LR/<name>.png   (when data/raw has benchmark sets)
    meta.json                    data set, scale, patch size, stride, counts, where the LR images came from,
                                 the rounding of our bicubic degradation (srbench.degradation)
"""

import dataclasses
import functools
import json
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap

from srbench.degradation import ROUNDINGS, Rounding, degrade, modcrop
from srbench.errors import InvalidImageError, SrbenchError, error_reason
from srbench.files import reserve, staged_folder, write_text
from srbench.images import image_size, list_images, read_image, write_png
from srbench.metrics import sr_metrics
from srbench.progress import progress
from srbench.names import SCALES

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


@functools.lru_cache(maxsize=None)
def min_test_side(scale: int) -> int:
    """The smallest side of an HR test image (validation or benchmark, mod-cropped to a multiple
    of ``scale``) that :func:`srbench.metrics.sr_metrics` can score at ``scale``: it shaves
    ``scale`` pixels from every side and SSIM needs one whole 11 x 11 window in what is left
    (16, 18 and 20 px at x2, x3 and x4). Found by trying the metrics on blank images, so that it
    follows them."""
    if scale < 1:
        raise SrbenchError(f"scale {scale}: must be >= 1")
    for side in range(scale, 1024 * scale, scale):
        blank = np.zeros((side, side, 3), np.uint8)
        try:
            sr_metrics(blank, blank, scale)
        except ValueError:
            continue
        return side
    raise AssertionError(f"sr_metrics accepts no image at x{scale}")


def check_test_size(path: Path, height: int, width: int, scale: int) -> None:
    """Refuse, in one line naming ``path``, an HR test image of ``height`` x ``width`` (after
    mod-cropping) too small for the metrics at ``scale`` (:func:`min_test_side`)."""
    side = min_test_side(scale)
    if min(height, width) < side:
        raise InvalidImageError(
            f"{path}: too small to evaluate at x{scale}: {width}x{height} px (mod-cropped to a multiple of {scale}); "
            f"PSNR and SSIM need at least {side}x{side} px"
        )


def _pair_size(hr_path: Path, scale: int, lr_dir: Path | None) -> tuple[int, int]:
    """(height, width) of the HR image :func:`make_pair` returns, from the file headers alone;
    refuses, in one line, an HR image too small for its LR image or to degrade at ``scale``."""
    lr_path = lr_dir / f"{hr_path.stem}.png" if lr_dir is not None else None
    width, height = image_size(hr_path)
    if lr_path is not None and lr_path.is_file():
        lr_width, lr_height = image_size(lr_path)
        if width < lr_width * scale or height < lr_height * scale:
            raise InvalidImageError(f"{lr_path}: LR size {lr_width}x{lr_height} does not match HR {hr_path} ({width}x{height}) at x{scale}")
        return lr_height * scale, lr_width * scale
    if width < scale or height < scale:
        raise InvalidImageError(f"{hr_path}: {width}x{height} px is too small to degrade at x{scale} (at least {scale}x{scale} px)")
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


@dataclass(frozen=True)
class RawData:
    """What :func:`prepare` reads from a raw data folder, checked from the image headers: the
    images of each split and benchmark set with their official LR folders (None: degrade here),
    and the number of training patches each training image gives."""

    train_images: list[Path]
    train_lr_dir: Path | None
    patch_counts: list[int]
    test_sets: dict[str, tuple[list[Path], Path | None]]  # "valid", then "benchmark/<set>"


def check_raw(raw_dir: Path, scale: int, patch_size: int, stride: int) -> RawData:
    """Check a raw data folder for :func:`prepare` from the image headers alone, before any
    work: every training image large enough to degrade at ``scale``, at least one that gives a
    patch, every validation and benchmark image large enough to evaluate
    (:func:`check_test_size`); anything else is one line naming the file."""
    if patch_size % scale:
        raise SrbenchError(f"prepare.patch_size={patch_size} is not a multiple of prepare.scale={scale}")
    train_images = list_images(raw_dir / "train" / "HR")
    valid_images = list_images(raw_dir / "valid" / "HR")
    if not train_images or not valid_images:
        raise SrbenchError(f"{raw_dir}: needs images in train/HR and valid/HR (run srbench download)")
    test_sets = {"valid": (valid_images, _official_lr_dir(raw_dir, "valid", scale))}
    for set_dir in sorted(path for path in (raw_dir / "benchmark").glob("*") if path.is_dir()):
        images = list_images(set_dir / "HR")
        if not images:
            raise SrbenchError(f"{set_dir / 'HR'}: no images in this benchmark set")
        test_sets[f"benchmark/{set_dir.name}"] = (images, _official_lr_dir(raw_dir / "benchmark", set_dir.name, scale))
    for images, lr_dir in test_sets.values():
        for path in images:
            check_test_size(path, *_pair_size(path, scale, lr_dir), scale)
    train_lr_dir = _official_lr_dir(raw_dir, "train", scale)
    counts = [len(_patch_corners(*_pair_size(path, scale, train_lr_dir), patch_size, stride)) for path in train_images]
    if sum(counts) == 0:
        raise SrbenchError(f"{raw_dir}/train/HR: no image is at least prepare.patch_size={patch_size} pixels on each side")
    if unused := [path.name for path, count in zip(train_images, counts) if count == 0]:
        logger.warning(
            "%d training image(s) smaller than prepare.patch_size=%d px on a side give no patch: %s",
            len(unused), patch_size, ", ".join(unused[:5]) + (", ..." if len(unused) > 5 else ""),
        )
    return RawData(train_images, train_lr_dir, counts, test_sets)


@contextmanager
def _mapper(workers: int) -> Iterator[Callable[..., Iterator[Any]]]:
    """An ordered, lazy ``map`` over ``workers`` spawned processes; one worker maps in this process."""
    if workers <= 1:
        yield map
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield pool.imap


def prepare(
    raw_dir: Path,
    out_dir: Path,
    scale: int,
    patch_size: int,
    stride: int,
    workers: int,
    dataset: str = "unnamed",
    rounding: Rounding = "per_pass",
    checked: RawData | None = None,
) -> "PreparedMeta":
    """Cut training patches and write validation and benchmark pairs from a raw data directory;
    returns the metadata.

    ``raw_dir`` has ``{train,valid}/HR/*.png`` and, optionally, official LR images in
    ``{train,valid}/LR_bicubic/X<scale>/`` and benchmark sets in ``benchmark/<set>/HR`` (with
    ``benchmark/<set>/LR_bicubic/X<scale>``). ``dataset`` names the data in the metadata;
    ``rounding`` is how LR images made here (where no official ones exist) are rounded.
    The images are checked first (:func:`check_raw`; pass its result as ``checked`` to skip
    reading the headers again). Everything is written to a fresh folder
    beside ``out_dir``, which takes its place at the end and is removed on any failure, so that a
    failed run leaves ``out_dir`` as it was.
    """
    raw = checked or check_raw(raw_dir, scale, patch_size, stride)
    count = sum(raw.patch_counts)
    started = time.perf_counter()
    with staged_folder(out_dir) as staging, _mapper(workers) as imap:
        written: dict[str, list[str]] = {}
        for set_name, (images, lr_dir) in raw.test_sets.items():
            jobs = [(path, scale, lr_dir, rounding, staging / set_name) for path in images]
            with progress(len(jobs), f"prepare {set_name}", "image", log=logger) as bar:
                written[set_name] = []
                for name in imap(_valid_pair, jobs):
                    written[set_name].append(name)
                    bar.update()

        # Patches go straight into the memory-mapped store as each image is cut: the patch count
        # comes from the image headers, so no more than one image's patches is held in RAM.
        lr_size = patch_size // scale
        hr_store = open_memmap(staging / "train_hr.npy", mode="w+", dtype=np.uint8, shape=(count, patch_size, patch_size, 3))
        lr_store = open_memmap(staging / "train_lr.npy", mode="w+", dtype=np.uint8, shape=(count, lr_size, lr_size, 3))
        reserve(staging / "train_hr.npy")
        reserve(staging / "train_lr.npy")
        offset = 0
        jobs = [(path, scale, raw.train_lr_dir, rounding, patch_size, stride) for path in raw.train_images]
        with progress(len(jobs), "prepare training patches", "image", log=logger) as bar:
            for index, (hr, lr) in enumerate(imap(_cut_patches, jobs)):
                if len(hr) != raw.patch_counts[index]:
                    raise SrbenchError(f"{raw.train_images[index]}: cut {len(hr)} patches, expected {raw.patch_counts[index]} from its size")
                hr_store[offset : offset + len(hr)] = hr
                lr_store[offset : offset + len(lr)] = lr
                offset += len(hr)
                bar.update(patches=offset)
        hr_store.flush()
        lr_store.flush()
        del hr_store, lr_store

        meta = PreparedMeta(
            dataset=dataset,
            scale=scale,
            patch_size=patch_size,
            stride=stride,
            train_images=len(raw.train_images),
            train_patches=count,
            valid_images=written.pop("valid"),
            benchmark_images={name.removeprefix("benchmark/"): len(names) for name, names in written.items()},
            lr_source="official" if raw.train_lr_dir else "matlab_bicubic",
            bicubic_rounding=rounding,
        )
        write_text(staging / "meta.json", json.dumps(dataclasses.asdict(meta), indent=2) + "\n")
    logger.info("prepared %d patches and %d validation pairs in %.1fs", count, len(meta.valid_images), time.perf_counter() - started)
    return meta


@dataclass(frozen=True)
class PreparedMeta:
    """What :func:`prepare` wrote in ``meta.json`` (read once, checked, by :func:`read_meta`):
    the data set's name, the scale, the stored patches' side and stride, the training images and
    patches, the validation images, the benchmark sets' image counts, where the LR images came
    from (``official`` DIV2K LR images, or ``matlab_bicubic``) and how bicubic resizes were
    rounded (:data:`srbench.degradation.ROUNDINGS`)."""

    dataset: str
    scale: int
    patch_size: int
    stride: int
    train_images: int
    train_patches: int
    valid_images: list[str]
    benchmark_images: dict[str, int]
    lr_source: str
    bicubic_rounding: Rounding = "per_pass"  # meta.json from before the key: the official LR images' rounding


def read_meta(prepared_dir: Path) -> PreparedMeta:
    """``prepared_dir``'s meta.json, checked; a missing file, a missing key or a value of the
    wrong type is one line naming the file."""
    path = prepared_dir / "meta.json"
    if not path.is_file():
        raise SrbenchError(f"{path}: prepared data not found (run srbench prepare)")
    try:
        values = json.loads(path.read_text())
        meta = PreparedMeta(**values)
    except (ValueError, TypeError) as error:  # not JSON (or not text), or other keys
        raise SrbenchError(f"{path}: not the metadata of srbench prepare ({error}; run srbench prepare again)") from error
    kinds = (("scale", int), ("patch_size", int), ("train_patches", int), ("dataset", str), ("lr_source", str), ("valid_images", list), ("benchmark_images", dict))
    for name, kind in kinds:
        if type(values[name]) is not kind:
            raise SrbenchError(f"{path}: {name} = {values[name]!r}: expected {kind.__name__} (run srbench prepare again)")
    if meta.bicubic_rounding not in ROUNDINGS:
        raise SrbenchError(f"{path}: bicubic_rounding = {meta.bicubic_rounding!r}: choose one of {', '.join(ROUNDINGS)}")
    if meta.scale not in SCALES or meta.patch_size < meta.scale or meta.patch_size % meta.scale or meta.train_patches < 1:
        raise SrbenchError(f"{path}: scale {meta.scale}, patch_size {meta.patch_size}, train_patches {meta.train_patches}: not what srbench prepare writes (run srbench prepare again)")
    return meta


def open_patch_stores(prepared_dir: Path, meta: PreparedMeta) -> tuple[np.ndarray, np.ndarray]:
    """The HR and LR patch stores of ``prepared_dir`` as copy-on-write memory maps (writable for
    ``torch.from_numpy``, never written back), checked against its ``meta`` (patch count, sides,
    scale) before any work: a truncated, damaged or mismatched store is one line naming the file."""
    lr_side = meta.patch_size // meta.scale
    stores = []
    for name, side in (("train_hr.npy", meta.patch_size), ("train_lr.npy", lr_side)):
        path = prepared_dir / name
        try:
            store = np.load(path, mmap_mode="c")
        except (OSError, ValueError, EOFError) as error:  # missing, truncated (mmap longer than the file), not a .npy
            reason = error_reason(error)
            raise SrbenchError(f"{path}: not a readable patch store ({reason}); run srbench prepare again") from error
        expected = (meta.train_patches, side, side, 3)
        if store.dtype != np.uint8 or store.shape != expected:
            raise SrbenchError(
                f"{path}: {store.dtype} patches of shape {store.shape}, but {prepared_dir / 'meta.json'} says uint8 {expected}; run srbench prepare again"
            )
        stores.append(store)
    return stores[0], stores[1]


@dataclass(frozen=True)
class ImagePair:
    """A whole validation or test image: its name, LR and HR uint8 arrays."""

    name: str
    lr: np.ndarray
    hr: np.ndarray


def load_pairs(folder: Path) -> list[ImagePair]:
    """The ``HR``/``LR`` PNG pairs of a prepared validation folder; a pair whose sizes do not
    match, or too small to evaluate (:func:`check_test_size`), is one line naming the file."""
    hr_paths = list_images(folder / "HR")
    if not hr_paths:
        raise SrbenchError(f"{folder / 'HR'}: no images")
    pairs = []
    for path in hr_paths:
        lr_path = folder / "LR" / path.name
        pair = ImagePair(path.stem, read_image(lr_path), read_image(path))
        (lr_height, lr_width), (height, width) = pair.lr.shape[:2], pair.hr.shape[:2]
        scale = height // lr_height
        if scale < 1 or (height, width) != (lr_height * scale, lr_width * scale):
            raise InvalidImageError(f"{lr_path}: LR size {lr_width}x{lr_height} does not match HR {path} ({width}x{height})")
        check_test_size(path, height, width, scale)
        pairs.append(pair)
    return pairs


def pairs_from_hr_folder(folder: Path, scale: int, rounding: Rounding = "per_pass") -> list[ImagePair]:
    """Test pairs from any folder of HR images, degraded like the training data (pass its
    ``rounding``); every image's size is checked from its header first (:func:`check_test_size`)."""
    images = list_images(folder)
    if not images:
        raise SrbenchError(f"{folder}: no PNG or JPEG images")
    for path in images:
        check_test_size(path, *_pair_size(path, scale, None), scale)
    return [ImagePair(path.stem, *reversed(make_pair(path, scale, None, rounding))) for path in images]
