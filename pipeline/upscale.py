"""`srbench upscale`: super-resolve the user's own images with a trained model."""

from pathlib import Path

import typer

from pipeline.common import ParamError, ensure_writable, logger
from srbench.images import read_image, write_png
from srbench.inference import bicubic_upscaler, model_upscaler, pick_device
from srbench.models import MODELS, load_model


def upscale(
    inputs: list[Path] = typer.Argument(..., help="PNG or JPEG images."),
    model: str = typer.Option("vdsr", "--model", help=f"bicubic or one of: {', '.join(MODELS)}."),
    out: Path = typer.Option(..., "--out", help="Folder for the PNG results."),
    weights: Path = typer.Option(None, help="Model weights [default: models/MODEL.pt]."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    scale: int = typer.Option(None, help="Scale, for bicubic only (trained models know theirs)."),
) -> None:
    """Upscale IN... with MODEL and write OUT/<name>.png."""
    targets = _targets(inputs, out)
    if model == "bicubic" and scale not in (2, 3, 4):
        raise ParamError(f"--scale {scale}: bicubic needs --scale 2, 3 or 4")
    if model != "bicubic" and model not in MODELS:
        raise ParamError(f"unknown model {model!r}: choose bicubic or one of {', '.join(MODELS)}")
    if model == "bicubic":
        run = bicubic_upscaler(scale)
    else:
        network, meta = load_model(weights or Path(f"models/{model}.pt"), pick_device(device))
        scale, run = meta["scale"], model_upscaler(network, next(network.parameters()).device)
    ensure_writable(out)  # after the weights load: a missing model leaves no empty --out behind
    images = [read_image(path) for path in inputs]  # every input is readable before any work
    for index, (path, image, target) in enumerate(zip(inputs, images, targets), start=1):
        sr = run(image)
        write_png(target, sr)
        logger.info("%d/%d %s (%dx%d) -> %s (%dx%d, x%d)", index, len(inputs), path, image.shape[1], image.shape[0], target, sr.shape[1], sr.shape[0], scale)


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
