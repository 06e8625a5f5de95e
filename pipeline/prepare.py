"""`srbench prepare`: training patches, validation and benchmark pairs from data/raw into data/prepared."""

import json
from pathlib import Path

import typer

from pipeline.common import PARAMS_OPTION, Params
from pipeline.tracking import mlflow_run
from srbench.data import prepare as prepare_data
from srbench.degradation import ROUNDINGS

SCALES = (2, 3, 4)


def prepare(
    params_file: Path = PARAMS_OPTION,
    raw: Path = typer.Option(Path("data/raw"), help="Output of srbench download."),
    out: Path = typer.Option(Path("data/prepared"), help="Where the patch store and test pairs go."),
) -> None:
    """Mod-crop, degrade (MATLAB bicubic, rounded per prepare.bicubic_rounding) unless official LR
    images exist, and cut training patches."""
    params = Params(params_file)
    scale = params.choice("prepare.scale", SCALES)
    patch_size = params.integer("prepare.patch_size", minimum=scale * 4)
    stride = params.integer("prepare.stride", minimum=1)
    workers = params.integer("prepare.workers", minimum=1)
    rounding = params.choice("prepare.bicubic_rounding", ROUNDINGS)
    info = raw / "dataset.json"
    dataset = json.loads(info.read_text())["name"] if info.is_file() else str(raw)
    with mlflow_run("prepare", params.section("prepare")) as mlflow:
        meta = prepare_data(
            raw, out, scale=scale, patch_size=patch_size, stride=stride, workers=workers, dataset=dataset, rounding=rounding
        )
        mlflow.log_metrics({"train_patches": meta["train_patches"], "valid_images": len(meta["valid_images"])})
        mlflow.set_tags({"lr_source": meta["lr_source"], "dataset": dataset})
