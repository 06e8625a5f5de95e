"""Reading images of every kind as 8-bit RGB, the pixel limit, atomic PNG writes, and `srbench
upscale` refusing outputs that would collide: each with real files."""

import logging
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srbench import images
from srbench.errors import InvalidImageError
from srbench.images import image_size, open_image, read_image, to_rgb, write_png

GREYS = np.array([0, 1, 64, 127, 128, 200, 254, 255], np.uint8)  # one row of 8-bit grey levels


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_raw_png(path: Path, width: int, height: int, bit_depth: int, colour_type: int, idat: bytes) -> None:
    """A PNG written byte by byte, for what Pillow cannot write (16-bit RGB) or a header that
    claims a huge image over a few bytes of data."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))


def grey_rgb(levels: np.ndarray) -> np.ndarray:
    return np.repeat(levels.reshape(1, -1, 1), 3, axis=2)


# --- problem 1: every mode to 8-bit RGB; 16-bit, 32-bit and float grey images were clipped to white


def test_16bit_grey_png_keeps_its_levels(tmp_path: Path) -> None:
    values = np.array([[0, 255, 256, 32767, 32768, 128 * 257, 65280, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode in ("I;16", "I")  # how Pillow reads it back
    rgb = read_image(tmp_path / "grey16.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 8, 3)
    assert rgb[0, :, 0].tolist() == [0, 0, 1, 127, 128, 128, 255, 255]  # x >> 8
    assert (rgb == rgb[..., :1]).all()  # grey stays grey


def test_16bit_gradient_is_not_mostly_white(tmp_path: Path) -> None:
    ramp = np.tile(np.arange(0, 65536, 64, dtype=np.uint16), (4, 1))  # 4 x 1024, dark to light
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    rgb = read_image(tmp_path / "ramp.png")
    np.testing.assert_array_equal(rgb[..., 1], (ramp >> 8).astype(np.uint8))
    assert abs(rgb.mean() - 127.5) < 1  # a mid-grey average, not 99.8% white


def test_16bit_grey_and_16bit_rgb_pngs_agree(tmp_path: Path) -> None:
    values = [0, 255, 256, 32768, 65535]
    Image.fromarray(np.array([values], np.uint16)).save(tmp_path / "grey.png")
    row = b"\x00" + b"".join(struct.pack(">HHH", v, v, v) for v in values)  # filter byte, then RGB16
    write_raw_png(tmp_path / "rgb.png", len(values), 1, 16, 2, zlib.compress(row))
    grey, rgb = read_image(tmp_path / "grey.png"), read_image(tmp_path / "rgb.png")
    assert rgb[0, :, 0].tolist() == [0, 0, 1, 128, 255]
    np.testing.assert_array_equal(grey, rgb)


def _grey_as(mode: str) -> Image.Image:
    """GREYS as an image of ``mode`` holding the same grey levels."""
    if mode in ("I;16", "I;16B"):
        levels = GREYS.astype(np.uint16) * 257
        return Image.frombytes(mode, (len(GREYS), 1), levels.astype("<u2" if mode == "I;16" else ">u2").tobytes())
    if mode == "I":
        return Image.fromarray(GREYS.reshape(1, -1).astype(np.int32))
    if mode == "F":
        return Image.fromarray(GREYS.reshape(1, -1).astype(np.float32) + np.float32(0.3))  # rounds back to the level
    if mode == "P":
        return Image.fromarray(grey_rgb(GREYS)).convert("P", palette=Image.Palette.ADAPTIVE)
    return Image.fromarray(grey_rgb(GREYS)).convert(mode)


@pytest.mark.parametrize(
    "mode, suffix, tolerance",
    [
        ("L", ".png", 0),
        ("P", ".png", 0),
        ("RGB", ".png", 0),
        ("RGB", ".jpg", 2),
        ("CMYK", ".tif", 0),
        ("YCbCr", ".tif", 1),
        ("LAB", ".tif", 1),
        ("I;16", ".png", 0),
        ("I;16B", ".tif", 0),
        ("I", ".tif", 0),
        ("F", ".tif", 0),
    ],
)
def test_every_mode_reads_as_the_same_greys(tmp_path: Path, mode: str, suffix: str, tolerance: int) -> None:
    path = tmp_path / f"grey{suffix}"
    _grey_as(mode).save(path)
    assert Image.open(path).mode == (mode if suffix != ".jpg" else "RGB")
    rgb = read_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, len(GREYS), 3)
    assert np.abs(rgb.astype(int) - grey_rgb(GREYS)).max() <= tolerance, rgb[0].tolist()


def test_one_bit_and_hsv(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 255, 0]], np.uint8)).convert("1").save(tmp_path / "bits.png")
    assert read_image(tmp_path / "bits.png")[0, :, 0].tolist() == [0, 255, 0]
    colours = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]]], np.uint8)
    np.testing.assert_array_equal(np.asarray(to_rgb(Image.fromarray(colours).convert("HSV"))), colours)


def test_32bit_int_and_float_in_16bit_range_are_scaled(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 256, 32768, 65535]], np.int32)).save(tmp_path / "int.tif")
    Image.fromarray(np.array([[0.0, 256.2, 32768.0, 65535.0]], np.float32)).save(tmp_path / "float.tif")
    for name in ("int.tif", "float.tif"):
        assert read_image(tmp_path / name)[0, :, 0].tolist() == [0, 1, 128, 255], name


@pytest.mark.parametrize(
    "values, dtype, fragment",
    [([0, 70000], np.int32, "0..70000"), ([-5, 100], np.int32, "-5..100"), ([0.0, np.nan], np.float32, "NaN")],
)
def test_values_outside_16bit_are_refused(tmp_path: Path, values: list, dtype: type, fragment: str) -> None:
    path = tmp_path / "deep.tif"
    Image.fromarray(np.array([values], dtype)).save(path)
    with pytest.raises(InvalidImageError) as error:
        read_image(path)
    message = str(error.value)
    assert str(path) in message and fragment in message and "\n" not in message


# --- problem 2: transparency is composited onto white, and said so once per image


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]


def test_rgba_is_composited_onto_white_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rgba = np.array([[[200, 0, 0, 255], [200, 0, 0, 0], [0, 0, 0, 128]]], np.uint8)
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    with caplog.at_level(logging.INFO, logger="srbench"):
        rgb = read_image(tmp_path / "alpha.png")
    assert rgb[0].tolist() == [[200, 0, 0], [255, 255, 255], [127, 127, 127]]
    assert _warnings(caplog) == [f"{tmp_path / 'alpha.png'}: has transparency; composited onto white"]


def test_opaque_alpha_needs_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rgba = np.full((2, 3, 4), 255, np.uint8)
    rgba[..., 0] = 7
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    palette = Image.fromarray(grey_rgb(GREYS)).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.save(tmp_path / "unused.png", transparency=255)  # no pixel uses index 255
    with caplog.at_level(logging.INFO, logger="srbench"):
        assert (read_image(tmp_path / "opaque.png")[..., 0] == 7).all()
        np.testing.assert_array_equal(read_image(tmp_path / "unused.png"), grey_rgb(GREYS))
    assert _warnings(caplog) == []


@pytest.mark.parametrize("kind", ["LA", "P", "I;16"])
def test_other_kinds_of_transparency(tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str) -> None:
    """The first pixel (level 128) is fully transparent, the second (level 64) opaque."""
    path = tmp_path / f"{kind.replace(';', '')}.png"
    if kind == "LA":
        Image.fromarray(np.array([[[128, 0], [64, 255]]], np.uint8)).save(path)
    elif kind == "P":
        image = Image.new("P", (2, 1))
        image.putpalette([128, 128, 128, 64, 64, 64])
        image.putdata([0, 1])
        image.save(path, transparency=0)
    else:
        Image.fromarray(np.array([[128 * 257, 64 * 257]], np.uint16)).save(path, transparency=128 * 257)
    with caplog.at_level(logging.INFO, logger="srbench"):
        rgb = read_image(path)
    assert rgb[0, :, 0].tolist() == [255, 64]
    assert _warnings(caplog) == [f"{path}: has transparency; composited onto white"]


def test_palette_with_alpha_in_memory(caplog: pytest.LogCaptureFixture) -> None:
    """PA, which no file format stores: to_rgb on an image in memory, named by the caller."""
    image = Image.new("PA", (2, 1))
    image.putpalette([128, 128, 128, 64, 64, 64])
    image.putdata([(0, 0), (1, 255)])
    with caplog.at_level(logging.INFO, logger="srbench"):
        assert np.asarray(to_rgb(image, "photo"))[0, :, 0].tolist() == [255, 64]
    assert _warnings(caplog) == ["photo: has transparency; composited onto white"]


# --- problem 3: a pixel limit, checked from the header before decoding


def test_header_over_the_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    write_raw_png(path, 9000, 9000, 8, 0, b"")  # claims 81 MP, holds no pixels at all
    for read in (image_size, open_image, read_image):
        with pytest.raises(InvalidImageError) as error:
            read(path)
        message = str(error.value)
        assert message.startswith(f"{path}: 9000x9000 = 81000000 pixels is over srbench's limit of 50000000"), message
        assert "\n" not in message


def test_a_real_8000x8000_png_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "black.png"
    Image.new("1", (8000, 8000)).save(path)  # 64 MP in about 8 KB
    assert path.stat().st_size < 100_000
    with pytest.raises(InvalidImageError, match="8000x8000 = 64000000 pixels is over srbench's limit"):
        read_image(path)


def test_the_limit_is_inclusive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_png(tmp_path / "small.png", np.zeros((20, 20, 3), np.uint8))
    monkeypatch.setattr(images, "MAX_PIXELS", 400)
    assert read_image(tmp_path / "small.png").shape == (20, 20, 3)
    monkeypatch.setattr(images, "MAX_PIXELS", 399)
    with pytest.raises(InvalidImageError, match="20x20 = 400 pixels is over srbench's limit of 399"):
        image_size(tmp_path / "small.png")


@pytest.mark.parametrize("side", [10_000, 20_000])  # Pillow warns over 89 MP and refuses over 179 MP
def test_pillows_decompression_bomb_checks_are_one_clear_error(tmp_path: Path, side: int) -> None:
    path = tmp_path / "bomb.png"
    write_raw_png(path, side, side, 8, 0, b"")
    for read in (image_size, read_image):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing may leak out as a warning either
            with pytest.raises(InvalidImageError) as error:
                read(path)
        assert str(error.value).startswith(f"{path}: over srbench's limit of 50000000 pixels")


# --- problem 5: write_png is atomic


def test_write_png_replaces_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out" / "a.png"
    write_png(target, np.full((4, 4, 3), 10, np.uint8))
    write_png(target, np.full((4, 4, 3), 20, np.uint8))
    assert (read_image(target) == 20).all()
    assert [p.name for p in target.parent.iterdir()] == ["a.png"]

    def full_disk(image: Image.Image, fp, filename, chunk=None, save_all=False) -> None:
        fp.write(b"\x89PNG half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(Image.SAVE, "PNG", full_disk)  # Pillow's plugins are registered by now
    with pytest.raises(OSError) as error:
        write_png(target, np.full((4, 4, 3), 30, np.uint8))
    assert error.value.errno == 28 and error.value.filename == str(target)
    assert (read_image(target) == 20).all()  # the old file is whole
    assert [p.name for p in target.parent.iterdir()] == ["a.png"]  # and no temporary file is left


# --- problem 4: `srbench upscale` refuses outputs that collide, and checks --out, before any work


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("srbench: error: "), stderr
    return lines[0]


@pytest.fixture
def photos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "a.png", np.full((6, 8, 3), 90, np.uint8))
    Image.fromarray(np.full((6, 8, 3), 160, np.uint8)).save(tmp_path / "a.jpg")
    write_png(tmp_path / "b.png", np.full((6, 8, 3), 30, np.uint8))
    return tmp_path


BICUBIC = ("upscale", "--model", "bicubic", "--scale", "2")


@pytest.mark.parametrize(
    "inputs, fragment",
    [
        (["a.jpg", "a.png"], "a.jpg and a.png would both be written to out/a.png"),
        (["b.png", "a.png", "b.png"], "b.png and b.png would both be written to out/b.png"),
        (["a.png", "sub/A.png"], "a.png and sub/A.png would both be written to out/A.png"),
    ],
)
def test_upscale_refuses_colliding_outputs(photos: Path, srbench_here, inputs: list[str], fragment: str) -> None:
    (photos / "sub").mkdir()
    write_png(photos / "sub" / "A.png", np.zeros((6, 8, 3), np.uint8))
    status, stderr = srbench_here(*BICUBIC, *inputs, "--out", "out")
    assert status == 2
    assert fragment in one_error_line(stderr)
    assert not (photos / "out").exists()  # nothing made, not even the folder


def test_upscale_refuses_to_replace_its_input(photos: Path, srbench_here) -> None:
    before = (photos / "a.png").read_bytes()
    status, stderr = srbench_here(*BICUBIC, "b.png", "a.png", "--out", ".")
    assert status == 2 and "b.png: the result would replace this input" in one_error_line(stderr)
    assert (photos / "a.png").read_bytes() == before


def test_upscale_checks_out_is_writable_before_any_work(photos: Path, srbench_here) -> None:
    (photos / "blocker").write_text("a file where --out needs a folder")
    status, stderr = srbench_here(*BICUBIC, "a.png", "--out", "blocker/out")
    assert status == 1 and "blocker/out: cannot write here" in one_error_line(stderr)  # the system refused


def test_upscale_writes_each_result_once_and_atomically(photos: Path, srbench_here) -> None:
    status, stderr = srbench_here(*BICUBIC, "a.jpg", "b.png", "--out", "out")
    assert status == 0, stderr
    assert sorted(p.name for p in (photos / "out").iterdir()) == ["a.png", "b.png"]  # no temporary files
    assert read_image(photos / "out" / "a.png").shape == (12, 16, 3)
    assert abs(int(read_image(photos / "out" / "a.png").mean()) - 160) <= 2  # from a.jpg


# --- `srbench upscale` refuses 16-bit images in one line (its results are 8-bit; Pillow reads 16-bit RGB as 8-bit)


def test_the_bit_depth_comes_from_the_header(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 65535]], np.uint16)).save(tmp_path / "grey16.png")
    row = b"\x00" + struct.pack(">HHHHHH", 0, 1, 2, 65535, 65534, 65533)
    write_raw_png(tmp_path / "rgb16.png", 2, 1, 16, 2, zlib.compress(row))
    write_png(tmp_path / "rgb8.png", np.zeros((2, 2, 3), np.uint8))
    Image.fromarray(np.zeros((2, 2), bool)).save(tmp_path / "bits.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photo.jpg")
    depths = {name: images.bit_depth(tmp_path / name) for name in ("grey16.png", "rgb16.png", "rgb8.png", "bits.png", "photo.jpg")}
    assert depths == {"grey16.png": 16, "rgb16.png": 16, "rgb8.png": 8, "bits.png": 1, "photo.jpg": 8}
    assert Image.open(tmp_path / "rgb16.png").mode == "RGB"  # what Pillow makes of it: 8 bits, silently


@pytest.mark.parametrize("kind", ["grey", "rgb"])
def test_upscale_refuses_a_16bit_png_naming_it(photos: Path, srbench_here, kind: str) -> None:
    if kind == "grey":
        Image.fromarray(np.full((6, 8), 40000, np.uint16)).save(photos / "deep.png")
    else:
        rows = b"".join(b"\x00" + struct.pack(">HHH", 40000, 20000, 10000) * 8 for _ in range(6))
        write_raw_png(photos / "deep.png", 8, 6, 16, 2, zlib.compress(rows))
    status, stderr = srbench_here(*BICUBIC, "a.png", "deep.png", "--out", "out")
    assert status == 2
    assert one_error_line(stderr) == (
        "srbench: error: deep.png: a 16-bit image; srbench upscale reads and writes 8-bit images and would drop its low byte "
        "(convert it to 8 bits first if that is what you want)"
    )
    assert not (photos / "out").exists()  # refused before any work


# --- `srbench upscale` writes its result band by band (memory: one band, whatever the image size)


def test_a_png_written_band_by_band_reads_back_whole(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    image = np.concatenate([rng.integers(0, 256, (37, 50, 3), np.uint8), np.tile(np.arange(50, dtype=np.uint8)[None, :, None] * 5, (40, 1, 3))])
    images.write_png_rows(tmp_path / "bands.png", 50, 77, (image[top : top + 25] for top in range(0, 77, 25)))  # 25, 25, 25, 2 rows
    assert np.array_equal(read_image(tmp_path / "bands.png"), image)
    assert Image.open(tmp_path / "bands.png").mode == "RGB"
    write_png(tmp_path / "whole.png", image)
    assert (tmp_path / "bands.png").stat().st_size < 1.1 * (tmp_path / "whole.png").stat().st_size  # compresses like Pillow


def test_a_png_short_of_rows_is_not_left_behind(tmp_path: Path) -> None:
    image = np.zeros((10, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="9 rows given for an image 10 rows high"):
        images.write_png_rows(tmp_path / "short.png", 8, 10, [image[:9]])
    with pytest.raises(ValueError, match=r"a band of shape \(10, 8, 3\) \(uint8\) in a 9-wide 8-bit RGB image"):
        images.write_png_rows(tmp_path / "short.png", 9, 10, [image])
    assert list(tmp_path.iterdir()) == []
