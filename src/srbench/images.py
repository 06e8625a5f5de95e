"""Reading and writing image files: RGB uint8 arrays in, PNG out (whole, or band by band)."""

import logging
import struct
import warnings
import zlib
from collections.abc import Iterable, Iterator
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


def bit_depth(path: Path) -> int:
    """Bits per sample as the file stores them, from its header: a PNG's bit depth (1, 2, 4, 8 or
    16; Pillow reads 16-bit RGB PNGs as 8-bit without saying so), 16 for Pillow's 16-bit grey
    modes, else 8."""
    try:
        with _pillow_limits(path), _open(path) as image:
            if image.format == "PNG":
                with open(path, "rb") as file:
                    return file.read(25)[24]  # signature (8), IHDR length and type (8), width, height, then the depth
            return 16 if image.mode in _SIXTEEN_BIT_MODES else 8
    except (OSError, ValueError, IndexError) as error:
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


def write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    """Write an H×W×3 uint8 array as JPEG of ``quality`` (1-95), colour at full resolution (4:4:4:
    halving the chroma would blur exactly the detail super-resolution adds), atomically."""
    with naming(path), atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="JPEG", quality=quality, subsampling=0)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FILTER_ROWS = 32  # rows filtered at once: a few MB of int16 work arrays however wide the image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _filtered(rows: np.ndarray, above: np.ndarray, step: int) -> bytes:
    """PNG scanlines of ``rows`` (R × W·C uint8; ``above``: the row before them), each with the
    filter (None, Sub, Up, Average, Paeth) whose bytes have the smallest sum of absolute values
    as signed bytes, the usual heuristic (the PNG specification, 12.8)."""
    raw = rows.astype(np.int16)
    up = np.concatenate([above[None].astype(np.int16), raw[:-1]])
    left = np.zeros_like(raw)
    left[:, step:] = raw[:, :-step]
    up_left = np.zeros_like(raw)
    up_left[:, step:] = up[:, :-step]
    estimate = left + up - up_left
    far_left, far_up, far_up_left = np.abs(estimate - left), np.abs(estimate - up), np.abs(estimate - up_left)
    paeth = np.where((far_left <= far_up) & (far_left <= far_up_left), left, np.where(far_up <= far_up_left, up, up_left))
    candidates = np.stack([raw, raw - left, raw - up, raw - (left + up) // 2, raw - paeth]).astype(np.uint8)  # modulo 256
    best = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2).argmin(axis=0)
    lines = np.empty((len(rows), 1 + rows.shape[1]), np.uint8)
    lines[:, 0] = best
    lines[:, 1:] = candidates[best, np.arange(len(rows))]
    return lines.tobytes()


def write_png_rows(path: Path, width: int, height: int, bands: Iterable[np.ndarray]) -> None:
    """Write an 8-bit RGB PNG of ``width`` × ``height`` from ``bands`` (H×W×3 uint8 arrays, top to
    bottom) as they come, atomically: memory holds one band, never the whole image. Pillow
    decodes it to the same pixels as :func:`write_png`'s file."""
    compressor, written = zlib.compressobj(6), 0
    above = np.zeros(width * 3, np.uint8)
    with naming(path), atomic_path(path) as tmp, open(tmp, "wb") as file:
        file.write(_PNG_SIGNATURE + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        for band in bands:
            if band.dtype != np.uint8 or band.shape[1:] != (width, 3):
                raise ValueError(f"{path}: a band of shape {band.shape} ({band.dtype}) in a {width}-wide 8-bit RGB image")
            flat = band.reshape(len(band), width * 3)
            for start in range(0, len(flat), _FILTER_ROWS):
                rows = flat[start : start + _FILTER_ROWS]
                data = compressor.compress(_filtered(rows, above, 3))
                if data:
                    file.write(_png_chunk(b"IDAT", data))
                above = rows[-1]
            written += len(band)
        if written != height:
            raise ValueError(f"{path}: {written} rows given for an image {height} rows high")
        file.write(_png_chunk(b"IDAT", compressor.flush()) + _png_chunk(b"IEND", b""))


def list_images(folder: Path) -> list[Path]:
    """The PNG/JPEG files directly in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise SrbenchError(f"{folder}: image folder not found")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
