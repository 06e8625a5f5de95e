"""`srbench report`: the comparison table, crops across models and training curves, in reports/."""

import json
from pathlib import Path

import typer

from pipeline.common import PARAMS_OPTION, Params, ParamError, logger, mlflow_run, write_text
from srbench.data import read_meta
from srbench.models import MODELS
from srbench.reporting import comparison_figure, markdown_table, training_curves_figure


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ParamError(f"{path}: not found (run the evaluate and train stages first)")
    return json.loads(path.read_text())


def report(
    params_file: Path = PARAMS_OPTION,
    data: Path = typer.Option(Path("data/prepared"), help="Output of srbench prepare."),
    out: Path = typer.Option(Path("reports"), help="Folder for report.md and the PNG figures."),
) -> None:
    """Compare bicubic and the trained models: report.md, comparison.png, training_curves.png."""
    params = Params(params_file)
    models = params.get("report.models")
    if not isinstance(models, list) or not models or models[0] != "bicubic" or not set(models[1:]) <= set(MODELS):
        raise ParamError(f"{params.path}: report.models = {models!r}: a list starting with bicubic, then any of {', '.join(MODELS)}")
    crop_size = params.integer("report.crop_size", minimum=8)
    meta = read_meta(data)

    rows, per_image, trained = [], {}, {}
    for model in models:
        row = {"name": model, **_read_json(Path(f"metrics/eval/{model}.json"))}
        if model != "bicubic":
            trained[model] = _read_json(Path(f"metrics/train/{model}.json"))
            row |= {"n_parameters": trained[model]["n_parameters"], "training_seconds": trained[model]["training_seconds"]}
        rows.append(row)
        per_image[model] = _read_json(Path(f"results/{model}/per_image.json"))

    with mlflow_run("report", params.section("report")) as mlflow:
        table = markdown_table(rows)
        devices = sorted({summary["device"] for summary in trained.values()})
        notes = [
            f"Scale x{meta['scale']}, {len(meta['valid_images'])} validation images ({', '.join(meta['valid_images'])}), "
            f"LR images: {meta['lr_source'].replace('_', ' ')}; {meta['train_patches']} training patches of {meta['patch_size']} px.",
            "Y-PSNR/Y-SSIM: BT.601 luma, `scale` pixels cropped at each border, SR rounded to uint8 (BasicSR convention).",
            f"Trained on: {', '.join(devices) or '–'}; training time is the wall time of the training loop.",
        ]
        if "srgan" in trained:
            notes.append(f"SRGAN content loss: VGG19 with `vgg_weights: {trained['srgan']['vgg_weights']}` weights.")
        text = "# srbench comparison\n\n" + table + "\n" + "".join(f"- {note}\n" for note in notes)
        text += "\n![Crops](comparison.png)\n\n![Training curves](training_curves.png)\n"

        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "report.md", text)
        comparison_figure(
            out / "comparison.png", data / "valid", {m: Path(f"results/{m}/sr") for m in models}, per_image, meta["scale"], crop_size
        )
        training_curves_figure(
            out / "training_curves.png", {m: Path(f"plots/train/{m}.csv") for m in trained}, rows[0]["psnr_y"]
        )
        for row in rows:
            mlflow.log_metrics({f"{row['name']}_psnr_y": row["psnr_y"], f"{row['name']}_ssim_y": row["ssim_y"]})
        mlflow.log_artifacts(str(out))
        logger.info("report written to %s:\n%s", out / "report.md", table)
