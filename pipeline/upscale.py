"""`srbench upscale`: super-resolve the user's own images with a trained model."""

import glob
from functools import partial
from pathlib import Path

import typer

from pipeline.common import ParamError, ensure_writable, logger
from srbench.images import image_size, list_images, read_image, write_png
from srbench.inference import bicubic_upscaler, model_upscaler, pick_device
from srbench.models import MODELS, SCALES, load_model
from srbench.tiling import TILE, log_progress, tiled_upscaler


def upscale(
    inputs: list[str] = typer.Argument(..., help="PNG or JPEG images, folders of them, or glob patterns."),
    model: str = typer.Option("vdsr", "--model", help=f"bicubic or one of: {', '.join(MODELS)}."),
    out: Path = typer.Option(..., "--out", help="Folder for the PNG results."),
    weights: Path = typer.Option(None, help="Model weights [default: models/MODEL.pt]."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    scale: int = typer.Option(None, help="Scale, for bicubic only (trained models know theirs)."),
    tile: int = typer.Option(TILE, min=0, help="LR tile side for trained models (0: the whole image in one pass)."),
) -> None:
    """Upscale IN... with MODEL and write OUT/<name>.png. Trained models run in tiles, each with a
    margin of the network's receptive field, so any image size fits in bounded memory and the
    result equals one pass over the whole image."""
    paths = _expand(inputs)
    targets = _targets(paths, out)
    if model == "bicubic" and scale not in SCALES:
        raise ParamError(f"--scale {scale}: bicubic needs --scale 2, 3 or 4")
    if model != "bicubic" and model not in MODELS:
        raise ParamError(f"unknown model {model!r}: choose bicubic or one of {', '.join(MODELS)}")
    for path in paths:  # every input readable, from its header, before any work
        image_size(path)
    if model == "bicubic":
        run = bicubic_upscaler(scale)
    else:
        network, meta = load_model(weights or Path(f"models/{model}.pt"), pick_device(device))
        scale, used = meta["scale"], next(network.parameters()).device
        tiled = tiled_upscaler(network, used, scale, tile) if tile else None
    ensure_writable(out)  # after the weights load: a missing model leaves no empty --out behind
    for index, (path, target) in enumerate(zip(paths, targets), start=1):
        image = read_image(path)
        if model != "bicubic":
            run = partial(tiled, on_tile=log_progress(path.name)) if tiled else model_upscaler(network, used)
        sr = run(image)
        write_png(target, sr)
        logger.info("%d/%d %s (%dx%d) -> %s (%dx%d, x%d)", index, len(paths), path, image.shape[1], image.shape[0], target, sr.shape[1], sr.shape[0], scale)


def _expand(inputs: list[str]) -> list[Path]:
    """The images named: files as they are, a folder's PNG/JPEG files, a glob pattern's matches
    (for shells that pass it on unexpanded); anything else is one line naming it."""
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


def _targets(inputs: list[Path], out: Path) -> list[Path]:
    """OUT/<stem>.png for each input, which must exist. Two inputs that would write the same file
    (the same stem, compared without case for case-insensitive disks, or one file given twice),
    and a result that would replace its own input, are refused."""
    targets: list[Path] = []
    claimed: dict[str, Path] = {}
    for path in inputs:
        if not path.is_file():
            raise ParamError(f"{path}: input image not found")
        target = out / f"{path.stem}.png"
        key = target.name.casefold()
        if key in claimed:
            raise ParamError(f"{claimed[key]} and {path} would both be written to {target}; rename one, or upscale them separately")
        if target.exists() and target.samefile(path):
            raise ParamError(f"{path}: the result would replace this input; choose another --out")
        claimed[key] = path
        targets.append(target)
    return targets
