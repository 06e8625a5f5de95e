"""Reading and writing image files: RGB uint8 arrays in, PNG out."""

from pathlib import Path

import numpy as np
from PIL import Image

from srbench.errors import InvalidImageError, SrbenchError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def open_image(path: Path) -> Image.Image:
    """Open and decode an image file; unreadable files raise InvalidImageError naming the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise InvalidImageError(f"{path}: cannot read image ({error})") from error


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise InvalidImageError(f"{path}: cannot read image ({error})") from error


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert to RGB, compositing any transparency onto white."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def read_image(path: Path) -> np.ndarray:
    """An image file as an H×W×3 uint8 RGB array."""
    return np.asarray(to_rgb(open_image(path)))


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an H×W×3 uint8 array as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def list_images(folder: Path) -> list[Path]:
    """The PNG/JPEG files directly in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise SrbenchError(f"{folder}: image folder not found")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
