"""`srbench upscale`: super-resolve the user's own images with a trained model (or bicubic)."""

import glob
import time
from pathlib import Path

import typer

from pipeline.layout import Outputs
from pipeline.outputs import ensure_writable, refuse_pipeline_paths
from pipeline.params import ParamError
from pipeline.process import logger
from srbench.names import SCALES, TILE, model_names

FORMATS = ("png", "keep")  # --format


def upscale(
    inputs: list[str] = typer.Argument(..., help="PNG or JPEG images, folders of them, or glob patterns."),
    model: str = typer.Option("vdsr", "--model", help=f"bicubic or one of: {', '.join(model_names())}."),
    out: Path = typer.Option(..., "--out", help="Folder for the results."),
    output_format: str = typer.Option("png", "--format", help="png (lossless), or keep: each input's own format (a JPEG stays a JPEG)."),
    quality: int = typer.Option(95, min=1, max=95, help="JPEG quality, for results written as JPEG (--format keep)."),
    seed: int = typer.Option(0, min=0, max=2**32 - 1, help="The training seed of the pipeline's model to use."),
    weights: Path = typer.Option(None, help="Model weights [default: models/seedN/MODEL.pt]."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    scale: int = typer.Option(None, help="Scale, for bicubic only (trained models know theirs)."),
    tile: int = typer.Option(TILE, min=0, help="LR tile side (0: the whole image in one pass, memory permitting)."),
) -> None:
    """Upscale images (files, folders, glob patterns) with MODEL into OUT/<name>.png (8-bit RGB; with
    --format keep a JPEG input gives OUT/<name>.jpg). Images run in tiles, each with a margin of
    the network's receptive field (bicubic: of its kernel), so any image size fits in bounded
    memory (a JPEG result is held whole) and the result equals one pass over the whole image."""
    if output_format not in FORMATS:
        raise ParamError(f"--format {output_format}: choose one of {', '.join(FORMATS)}")
    if model == "bicubic" and scale not in SCALES:
        raise ParamError("bicubic needs --scale 2, 3 or 4" + ("" if scale is None else f" (got --scale {scale})"))
    if model != "bicubic" and model not in model_names():
        raise ParamError(f"unknown model {model!r}: choose bicubic or one of {', '.join(model_names())}")
    refuse_pipeline_paths("--out", out)
    from srbench.images import read_image, write_jpeg, write_png, write_png_rows  # numpy and Pillow: after the cheap checks
    import numpy as np

    from srbench.progress import progress
    from srbench.tiling import tile_count

    paths = _expand(inputs)
    targets = _targets(paths, out, output_format)
    sizes = [_eight_bit_size(path) for path in paths]  # every input readable, from its header, before any work
    if model == "bicubic":
        from srbench.inference import bicubic_upscaler
        from srbench.tiling import tiled_bicubic

        run = tiled_bicubic(scale, tile=tile) if tile else bicubic_upscaler(scale)
    else:
        from srbench.inference import model_upscaler, pick_device
        from srbench.models import load_model
        from srbench.tiling import tiled_upscaler

        weights = weights or Outputs(model, seed).weights
        network, meta = load_model(weights, pick_device(device), expected=model)
        if scale is not None and scale != meta["scale"]:
            raise ParamError(f"--scale {scale}: {weights} holds {meta['name']} x{meta['scale']}, which upscales by its own scale (leave --scale out)")
        scale, used = meta["scale"], next(network.parameters()).device
        run = tiled_upscaler(network, used, scale, tile) if tile else model_upscaler(network, used)
    ensure_writable(out)  # after the weights load: a missing model leaves no empty --out behind
    started = time.perf_counter()
    for index, (path, target, (width, height)) in enumerate(zip(paths, targets, sizes), start=1):
        image = read_image(path)
        if tile:  # each row of tiles is written as it comes: memory holds one, whatever the image size
            with progress(tile_count(height, width, tile), f"{index}/{len(paths)} {path.name}", "tile", log=logger, leave=False) as bar:
                bands = run.bands(image, on_tile=lambda done, total: bar.update())
                if target.suffix == ".png":
                    write_png_rows(target, width * scale, height * scale, bands)
                else:
                    write_jpeg(target, np.concatenate(list(bands)), quality)
        elif target.suffix == ".png":
            write_png(target, run(image))
        else:
            write_jpeg(target, run(image), quality)
        logger.info("%d/%d %s (%dx%d) -> %s (%dx%d, x%d)", index, len(paths), path, width, height, target, width * scale, height * scale, scale)
    megapixels = sum(width * height for width, height in sizes) * scale**2 / 1e6
    logger.info("upscaled %d image(s) x%d with %s: %.2f MP written in %.1f s, in %s", len(paths), scale, model, megapixels, time.perf_counter() - started, out)


def _eight_bit_size(path: Path) -> tuple[int, int]:
    """(width, height) of an input image from its header; a 16-bit one is refused in one line."""
    from srbench.images import bit_depth, image_size

    size = image_size(path)
    if bit_depth(path) > 8:
        raise ParamError(
            f"{path}: a 16-bit image; srbench upscale reads and writes 8-bit images and would drop its low byte "
            "(convert it to 8 bits first if that is what you want)"
        )
    return size


def _expand(inputs: list[str]) -> list[Path]:
    """The images named: files as they are, a folder's PNG/JPEG files, a glob pattern's matches
    (for shells that pass it on unexpanded); anything else is one line naming it."""
    from srbench.images import list_images

    paths: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise ParamError(f"{path}: no PNG or JPEG images in this folder")
            paths += found
        elif not path.exists() and glob.has_magic(name):
            found = sorted(Path(match) for match in glob.glob(name) if Path(match).is_file())
            if not found:
                raise ParamError(f"{name}: no file matches this pattern")
            paths += found
        else:
            paths.append(path)
    return paths


def _targets(inputs: list[Path], out: Path, output_format: str) -> list[Path]:
    """OUT/<stem>.png (``keep``: .jpg for a JPEG) for each input, which must exist. Two inputs that would write the same file
    (the same stem, compared without case for case-insensitive disks, or one file given twice),
    and a result that would replace its own input, are refused."""
    targets: list[Path] = []
    claimed: dict[str, Path] = {}
    for path in inputs:
        if not path.is_file():
            raise ParamError(f"{path}: input image not found")
        jpeg = output_format == "keep" and path.suffix.lower() in (".jpg", ".jpeg")
        target = out / f"{path.stem}{'.jpg' if jpeg else '.png'}"
        key = target.name.casefold()
        if key in claimed:
            raise ParamError(f"{claimed[key]} and {path} would both be written to {target}; rename one, or upscale them separately")
        if target.exists() and target.samefile(path):
            raise ParamError(f"{path}: the result would replace this input; choose another --out")
        claimed[key] = path
        targets.append(target)
    return targets
