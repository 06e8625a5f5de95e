"""`srbench prepare`: training patches, validation and benchmark pairs from data/raw into data/prepared."""

import json
from pathlib import Path

import typer

from pipeline.outputs import ensure_writable, output_folder
from pipeline.params import PARAMS_OPTION, Params
from pipeline.process import data_lock, workspace_lock
from pipeline.tracking import mlflow_run, output_places
from srbench.errors import SrbenchError
from srbench.names import SCALES


def _dataset_name(raw: Path) -> str:
    """The data set's name from ``raw/dataset.json`` (written by srbench download), else the folder."""
    info = raw / "dataset.json"
    if not info.is_file():
        return str(raw)
    try:
        values = json.loads(info.read_text(encoding="utf-8"))
    except ValueError as error:  # not UTF-8, or not JSON
        raise SrbenchError(f"{info}: not valid JSON ({error})") from error
    name = values.get("name") if isinstance(values, dict) else None
    if not isinstance(name, str) or not name:
        raise SrbenchError(f"{info}: name = {name!r}: expected a non-empty string")
    return name


def prepare(
    params_file: Path = PARAMS_OPTION,
    raw: Path = typer.Option(Path("data/raw"), help="Output of srbench download."),
    out: Path = typer.Option(Path("data/prepared"), help="Where the patch store and test pairs go."),
) -> None:
    """Mod-crop, degrade (MATLAB bicubic, rounded per prepare.bicubic_rounding) unless official LR
    images exist, and cut training patches. Every image is checked from its header before any
    work; a failed run leaves the previous prepared data as it was."""
    params = Params(params_file)
    scale = params.choice("prepare.scale", SCALES)
    patch_size = params.integer("prepare.patch_size", minimum=scale * 4)
    stride = params.integer("prepare.stride", minimum=1)
    workers = params.integer("prepare.workers", minimum=1)
    from srbench.data import check_raw
    from srbench.data import prepare as prepare_data
    from srbench.degradation import ROUNDINGS  # these import torch: after --help and the cheap checks

    rounding = params.choice("prepare.bicubic_rounding", ROUNDINGS)
    dataset = _dataset_name(raw)
    out = output_folder("--out", out, Path("data/prepared"), "meta.json")
    ensure_writable(out.parent, *output_places())
    with workspace_lock("prepare"), data_lock(raw), data_lock(out, "srbench prepare"):
        checked = check_raw(raw, scale, patch_size, stride)  # from the image headers, before the MLflow run: a bad image starts no run
        with mlflow_run("prepare", params.section("prepare")) as mlflow:
            meta = prepare_data(
                raw, out, scale=scale, patch_size=patch_size, stride=stride, workers=workers, dataset=dataset, rounding=rounding,
                checked=checked,
            )
            mlflow.log_metrics({"train_patches": meta.train_patches, "valid_images": len(meta.valid_images)})
            mlflow.set_tags({"lr_source": meta.lr_source, "dataset": dataset})
