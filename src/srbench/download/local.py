"""The local sources: the colour photographs bundled with the installed packages
(:func:`export_samples`) and a folder of images (:func:`import_folder`), each written as a
train/valid split."""

from __future__ import annotations

import importlib.util
import logging
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

from srbench.download.catalogue import SPLITS
from srbench.errors import SrbenchError
from srbench.files import staged_folder
from srbench.images import list_images, open_image, to_rgb
from srbench.progress import progress

logger = logging.getLogger(__name__)


def _stereo_motorcycle(index: int) -> Callable[[], np.ndarray]:
    return lambda: skdata.stereo_motorcycle()[index]


def _packaged_photograph(package: str, relative: str) -> Callable[[], np.ndarray]:
    """A loader of the photograph ``relative`` inside the installed ``package`` (found without
    importing it); a missing package or file is one line naming both."""

    def load() -> np.ndarray:
        spec = importlib.util.find_spec(package)
        folders = list(spec.submodule_search_locations or []) if spec is not None else []
        path = Path(folders[0]) / relative if folders else None
        if path is None or not path.is_file():
            raise SrbenchError(f"data.source samples: {package}'s sample photograph {relative} not found (is {package} installed?)")
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    return load


# Every real colour photograph that the installed packages ship, so that the default data set is
# offline: scikit-image's (no pooch download needed), matplotlib's sample data and scikit-learn's
# (installed with MLflow). Synthetic images (colorwheel, logo, matplotlib's gift-box render),
# aliases (cat), grayscale images and image stacks are left out.
SAMPLE_IMAGES: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skdata.astronaut,
    "chelsea": skdata.chelsea,
    "coffee": skdata.coffee,
    "hubble_deep_field": skdata.hubble_deep_field,
    "immunohistochemistry": skdata.immunohistochemistry,
    "motorcycle_left": _stereo_motorcycle(0),
    "motorcycle_right": _stereo_motorcycle(1),
    "retina": skdata.retina,
    "rocket": skdata.rocket,
    "grace_hopper": _packaged_photograph("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    "china": _packaged_photograph("sklearn", "datasets/images/china.jpg"),
    "flower": _packaged_photograph("sklearn", "datasets/images/flower.jpg"),
}


def _center_crop(image: Image.Image, max_side: int | None) -> Image.Image:
    if max_side is None:
        return image
    width, height = image.size
    new_w, new_h = min(width, max_side), min(height, max_side)
    if (new_w, new_h) == (width, height):
        return image
    left, top = (width - new_w) // 2, (height - new_h) // 2
    return image.crop((left, top, left + new_w, top + new_h))


def _export_split(
    sources: dict[str, Callable[[], Image.Image]],
    out_dir: Path,
    n_valid: int,
    seed: int,
    max_side: int | None,
    origin: str,
    valid_names: list[str] | None = None,
) -> None:
    """Write each source image as PNG into train/HR or valid/HR: ``valid_names`` held out when
    given, else ``n_valid`` images drawn by ``seed``."""
    count = len(sources)
    if count < 2:
        raise SrbenchError(f"{origin}: found {count} image(s), need at least 2 (train and valid)")
    if max_side is not None and max_side < 1:
        raise SrbenchError(f"max_side={max_side}: must be at least 1")
    if valid_names is not None:
        unknown = sorted(set(valid_names) - set(sources))
        if unknown:
            raise SrbenchError(f"valid_images: {unknown[0]!r} is not an image of {origin} ({', '.join(sorted(sources))})")
        n_valid = len(set(valid_names))
    if not 1 <= n_valid < count:
        raise SrbenchError(
            f"n_valid={n_valid}: must be between 1 and {count - 1} for {count} images in {origin}"
        )
    order = sorted(sources)
    random.Random(seed).shuffle(order)
    valid = set(valid_names) if valid_names is not None else set(order[:n_valid])
    with staged_folder(Path(out_dir)) as stage:
        for split in SPLITS:
            (stage / split / "HR").mkdir(parents=True)
        with progress(count, f"export {origin}", "image", log=logger) as bar:
            for name in sorted(sources):
                split = "valid" if name in valid else "train"
                image = _center_crop(to_rgb(sources[name](), name), max_side)
                image.save(stage / split / "HR" / f"{name}.png")
                bar.update()
    logger.info("%s: %d train and %d valid images", origin, count - n_valid, n_valid)


def export_samples(
    out_dir: Path, n_valid: int, seed: int, max_side: int | None, valid_names: list[str] | None = None
) -> None:
    """Write the colour photographs bundled with the installed packages (:data:`SAMPLE_IMAGES`) as a train/valid split."""
    sources = {
        name: (lambda load=load: Image.fromarray(load())) for name, load in SAMPLE_IMAGES.items()
    }
    _export_split(sources, out_dir, n_valid, seed, max_side, "sample photographs", valid_names)


def import_folder(
    folder: Path, out_dir: Path, n_valid: int, seed: int, max_side: int | None, valid_names: list[str] | None = None
) -> None:
    """Use the .png/.jpg/.jpeg images of ``folder`` (non-recursive) as a train/valid split."""
    folder = Path(folder)
    paths = list_images(folder)
    sources: dict[str, Callable[[], Image.Image]] = {}
    for path in paths:
        if path.stem in sources:
            raise SrbenchError(f"{path}: another image in {folder} has the same name {path.stem!r}")
        sources[path.stem] = lambda path=path: open_image(path)
    _export_split(sources, out_dir, n_valid, seed, max_side, str(folder), valid_names)
