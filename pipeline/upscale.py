"""`srbench upscale`: super-resolve the user's own images with a trained model."""

from pathlib import Path

import typer

from pipeline.common import ParamError, logger
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
    for path in inputs:
        if not path.is_file():
            raise ParamError(f"{path}: input image not found")
    if model == "bicubic":
        if scale not in (2, 3, 4):
            raise ParamError(f"--scale {scale}: bicubic needs --scale 2, 3 or 4")
        run = bicubic_upscaler(scale)
    elif model in MODELS:
        network, meta = load_model(weights or Path(f"models/{model}.pt"), pick_device(device))
        scale, run = meta["scale"], model_upscaler(network, next(network.parameters()).device)
    else:
        raise ParamError(f"unknown model {model!r}: choose bicubic or one of {', '.join(MODELS)}")
    images = [read_image(path) for path in inputs]  # every input is readable before any work
    for index, (path, image) in enumerate(zip(inputs, images), start=1):
        target = out / f"{path.stem}.png"
        sr = run(image)
        tmp = target.with_name(target.name + ".tmp.png")
        write_png(tmp, sr)
        tmp.replace(target)
        logger.info("%d/%d %s (%dx%d) -> %s (%dx%d, x%d)", index, len(inputs), path, image.shape[1], image.shape[0], target, sr.shape[1], sr.shape[0], scale)
