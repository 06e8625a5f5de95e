"""`srbench check MODEL...`: run each recipe of a params file briefly and say whether it trains."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from pipeline.outputs import refuse_pipeline_paths, write_json
from pipeline.params import PARAMS_OPTION, ParamError, Params
from pipeline.process import logger
from pipeline.recipe import check_recipe, read_recipe
from srbench.files import write_text
from srbench.names import model_names

def check(
    models: list[str] = typer.Argument(None, help="Models to check [default: every model]."),
    params_file: Path = PARAMS_OPTION,
    data: Path = typer.Option(Path("data/prepared"), help="Output of srbench prepare (any data set and scale)."),
    steps: int = typer.Option(300, min=3, help="Training steps per recipe."),
    batch_size: int = typer.Option(None, help="Override every recipe's batch size."),
    patch_size: int = typer.Option(None, help="Override every recipe's HR crop size."),
    vgg_weights: str = typer.Option(None, help="Override the GANs' VGG weights (random: offline)."),
    device: str = typer.Option(None, help="Override train.device."),
    above_bicubic: list[str] = typer.Option(["vdsr"], "--above-bicubic", help="Models that must end above bicubic."),
    out: Path = typer.Option(None, help="Write check.md and check.json into this folder."),
) -> None:
    """Train each recipe for a few steps from scratch (srgan from a fresh SRResNet), its schedule
    compressed into them, and report whether its loss stayed finite, fell and never spiked, and
    its validation Y-PSNR against bicubic. Exit status 1 when a recipe fails, 2 on bad input."""
    known = model_names()
    models = models or list(known)
    unknown = sorted(set(models + above_bicubic) - set(known))
    if unknown:
        raise ParamError(f"unknown model {unknown[0]!r}: choose from {', '.join(known)}")
    if vgg_weights not in (None, "imagenet", "random"):
        raise ParamError(f"--vgg-weights {vgg_weights!r}: choose imagenet or random")
    for option, value, minimum in (("--batch-size", batch_size, 1), ("--patch-size", patch_size, 4)):
        if value is not None and value < minimum:
            raise ParamError(f"{option} {value}: must be >= {minimum}")
    if out is not None:
        refuse_pipeline_paths("--out", out)
    params = Params(params_file)
    from srbench.data import read_meta
    from srbench.inference import bicubic_validation_psnr, pick_device
    from srbench.recipe_check import markdown

    # Eager: a few hundred steps, which compiling would cost more than it saves, and it changes no result.
    overrides = {"batch_size": batch_size, "patch_size": patch_size, "compile": False}
    recipes = {model: read_recipe(params, model) for model in models}  # every param, first
    crops = {model: patch_size or recipe.patch_size for model, recipe in recipes.items()}
    meta = read_meta(data)
    for model, crop in crops.items():
        if crop % meta.scale or crop > meta.patch_size:
            raise ParamError(
                f"{model}: crop {crop} px must be a multiple of the scale ({meta.scale}) and at most the "
                f"prepared patches' {meta.patch_size} px in {data} (use --patch-size)"
            )
    target = pick_device(device or params.string("train.device"))
    bicubic = bicubic_validation_psnr(data)

    checks = []
    for model in models:
        model_overrides = overrides | ({"vgg_weights": vgg_weights} if recipes[model].content_loss else {})
        logger.info("checking %s (%s) for %d steps on %s", model, params.path, steps, target)
        checks.append(check_recipe(params, model, data, steps, model_overrides, model in above_bicubic, bicubic, target))
    table = markdown(checks)
    print(table, end="")
    if out is not None:
        write_text(out / "check.md", table)
        write_json(out / "check.json", {"params": str(params.path), "data": dataclasses.asdict(meta), "checks": [check.as_dict() for check in checks]})
    failed = [f"{check.model}: {', '.join(check.problems)}" for check in checks if check.problems]
    if failed:
        logger.error("recipes that fail: %s", "; ".join(failed))
        raise typer.Exit(1)
