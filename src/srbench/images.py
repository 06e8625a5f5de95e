"""Reading and writing image files: RGB uint8 arrays in, PNG out."""

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from srbench.errors import InvalidImageError, SrbenchError
from srbench.files import atomic_path, naming

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

# The largest image srbench decodes, checked from the file's header. Bigger than any DIV2K image
# (about 2040 × 1400 = 2.9 MP) and an 8K photo (7680 × 4320 = 33 MP), small enough that a tiny,
# highly compressed file cannot make a stage take gigabytes of memory. Pillow's own
# decompression-bomb checks (a warning over Image.MAX_IMAGE_PIXELS, 89 MP by default, an error
# over twice that) come first for bigger images; both are reported as over this limit.
MAX_PIXELS = 50_000_000

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


@contextmanager
def _pillow_limits(path: Path) -> Iterator[None]:
    """Pillow's decompression-bomb warning and error as InvalidImageError: their limits are above
    :data:`MAX_PIXELS`, so whatever they flag (some formats only when decoding) is over it too."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
            raise InvalidImageError(f"{path}: over srbench's limit of {MAX_PIXELS} pixels ({error})") from error


def _open(path: Path) -> Image.Image:
    """``Image.open`` (the header only) with :data:`MAX_PIXELS` checked before any decoding."""
    image = Image.open(path)
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise InvalidImageError(
            f"{path}: {width}x{height} = {width * height} pixels is over srbench's limit of {MAX_PIXELS} "
            "(an 8K photo is 33 million); downscale or crop it first"
        )
    return image


def open_image(path: Path) -> Image.Image:
    """Open and decode an image file. Unreadable files, and images over :data:`MAX_PIXELS`
    (checked from the header, before decoding), raise InvalidImageError naming the file."""
    try:
        with _pillow_limits(path), _open(path) as image:
            image.load()
            return image.copy()
    except (OSError, ValueError) as error:
        raise InvalidImageError(f"{path}: cannot read image ({error})") from error


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels; images over
    :data:`MAX_PIXELS` raise InvalidImageError."""
    try:
        with _pillow_limits(path), _open(path) as image:
            return image.size
    except (OSError, ValueError) as error:
        raise InvalidImageError(f"{path}: cannot read image ({error})") from error


def to_rgb(image: Image.Image, source: str | Path = "image") -> Image.Image:
    """Convert an image of any mode Pillow reads to 8-bit RGB.

    16-bit samples keep their high byte (``x >> 8``: 65535 -> 255, 32768 -> 128), as Pillow itself
    reads 16-bit RGB and RGBA PNGs, so a 16-bit grey file and its 16-bit RGB copy agree. 32-bit
    integer (I) and float (F) images are taken as 8-bit when every value, rounded, lies in 0..255,
    as 16-bit when in 0..65535, and refused otherwise. Transparency (an alpha channel, or a
    palette or colour key marked transparent) is composited onto white, with a logged warning
    naming ``source`` when some pixel is not fully opaque.
    """
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        return _deep_to_rgb(image, source)
    try:
        if image.mode not in _ALPHA_MODES and "transparency" not in image.info:
            return image.convert("RGB")
        rgba = image.convert("RGBA")
    except ValueError as error:
        raise InvalidImageError(f"{source}: cannot convert image mode {image.mode} to RGB ({error})") from error
    if rgba.getextrema()[3][0] == 255:
        return rgba.convert("RGB")
    logger.warning("%s: has transparency; composited onto white", source)
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _deep_to_rgb(image: Image.Image, source: str | Path) -> Image.Image:
    """:func:`to_rgb` for 16-bit (I;16*), 32-bit integer (I) and float (F) grey images."""
    values = np.asarray(image)
    if image.mode in _SIXTEEN_BIT_MODES:
        grey = (values >> 8).astype(np.uint8)
    else:
        if not np.isfinite(values).all():
            raise InvalidImageError(f"{source}: {image.mode} image has NaN or infinite values")
        levels = np.rint(values) if values.dtype.kind == "f" else values
        low, high = levels.min(), levels.max()
        if low < 0 or high > 65535:
            raise InvalidImageError(
                f"{source}: {image.mode} image has values {low:g}..{high:g}; srbench reads 8-bit (0..255) and 16-bit (0..65535) values"
            )
        grey = levels.astype(np.uint8) if high <= 255 else (levels.astype(np.uint16) >> 8).astype(np.uint8)
    if "transparency" in image.info:
        transparent = values == image.info["transparency"]
        if transparent.any():
            logger.warning("%s: has transparency; composited onto white", source)
            grey[transparent] = 255
    return Image.fromarray(grey).convert("RGB")


def read_image(path: Path) -> np.ndarray:
    """An image file as an H×W×3 uint8 RGB array (see :func:`to_rgb` for how other modes and
    transparency are converted)."""
    return np.asarray(to_rgb(open_image(path), path))


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an H×W×3 uint8 array as PNG, atomically (a unique temporary file renamed over
    ``path``), making the folder if needed."""
    with naming(path), atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def list_images(folder: Path) -> list[Path]:
    """The PNG/JPEG files directly in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise SrbenchError(f"{folder}: image folder not found")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
