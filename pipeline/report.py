"""`srbench report`: one comparison table per test set (with the published numbers beside the
measured ones), crops across models and training curves, in reports/."""

import json
from pathlib import Path

import typer

from pipeline.common import PARAMS_OPTION, Params, ParamError, ensure_writable, logger, workspace_lock, write_text
from pipeline.tracking import mlflow_run, output_places
from srbench.data import read_meta
from srbench.files import staged_folder
from srbench.models import GAN_MODELS, MODELS
from srbench.published import SOURCES, published


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ParamError(f"{path}: not found (run the evaluate and train stages first)")
    return json.loads(path.read_text())


def _set_title(set_name: str, meta: dict) -> tuple[str, str]:
    """(heading, key of the published numbers) of a test set."""
    if set_name != "valid":
        return set_name, set_name
    heading = f"{meta['dataset']} validation ({', '.join(meta['valid_images'])})"
    return heading, "DIV2K" if meta["dataset"] == "DIV2K" else heading


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
    crop_images = params.integer("report.crop_images", minimum=1)
    departures = params.section("report.departures")
    if not set(departures) <= set(MODELS) or not all(isinstance(text, str) and text for text in departures.values()):
        raise ParamError(f"{params.path}: report.departures = {departures!r}: a mapping of model names to non-empty texts")
    meta = read_meta(data)
    scale = meta["scale"]

    evaluated = {model: _read_json(Path(f"metrics/eval/{model}.json")) for model in models}
    trained = {model: _read_json(Path(f"metrics/train/{model}.json")) for model in models[1:]}
    per_image = {model: _read_json(Path(f"results/{model}/valid/per_image.json")) for model in models}
    set_names = [key for key in evaluated["bicubic"] if isinstance(evaluated["bicubic"][key], dict)]
    ensure_writable(out.parent, *output_places())
    from srbench.reporting import comparison_figure, markdown_table, training_curves_figure  # matplotlib: only report needs it

    with workspace_lock("report"), mlflow_run("report", params.section("report")) as mlflow:
        sections, cited = [], set()
        for set_name in set_names:
            heading, published_key = _set_title(set_name, meta)
            rows = []
            for model in models:
                row = {"name": model, **evaluated[model][set_name], "published": published(published_key, scale, model)}
                if model in trained:
                    row |= {"n_parameters": trained[model]["n_parameters"], "training_seconds": trained[model]["training_seconds"]}
                if row["published"]:
                    cited.add(model)
                rows.append(row)
                mlflow.log_metrics({f"{set_name}_{model}_psnr_y": row["psnr_y"], f"{set_name}_{model}_ssim_y": row["ssim_y"]})
            sections.append(f"## {heading}, x{scale}\n\n{markdown_table(rows)}")

        devices = sorted({summary["device"] for summary in trained.values()})
        notes = [
            f"Scale x{scale}; training data: {meta['dataset']}, {meta['train_patches']} patches of {meta['patch_size']} px; "
            f"LR images: {meta['lr_source'].replace('_', ' ')}.",
            "Y-PSNR/Y-SSIM: BT.601 luma, `scale` pixels cropped at each border, SR rounded to uint8 (BasicSR convention).",
            f"LPIPS (AlexNet, lower is better): {evaluated['bicubic']['lpips_status']}.",
            "Keras accuracy: the study's Keras `accuracy` metric: fraction of pixels whose dominant colour channel matches HR; "
            "not a fidelity measure.",
            f"Trained on: {', '.join(devices) or '–'}; training time is the training loop's, validation excluded.",
            "`-seed` rows are the study's (Dias & Binkowski) architectures and recipes; the others the papers'.",
        ]
        notes += [f"{model} content loss: {trained[model]['content_loss']}." for model in GAN_MODELS if model in trained]
        if cited:
            sources = sorted({SOURCES[model] for model in cited})
            notes.append(f"Published numbers are the papers' ({'; '.join(sources)}), not measured here.")
        text = "# srbench comparison\n\n" + "\n".join(sections) + "\n" + "".join(f"- {note}\n" for note in notes)
        if departures:
            text += "\n## Where this profile departs from the papers\n\n" + "".join(f"- **{model}**: {note}\n" for model, note in departures.items())
        text += "\n![Crops](comparison.png)\n\n![Training curves](training_curves.png)\n"

        with staged_folder(out) as staging:  # the report appears whole or not at all
            write_text(staging / "report.md", text)
            comparison_figure(
                staging / "comparison.png", data / "valid", {m: Path(f"results/{m}/valid/sr") for m in models}, per_image, scale, crop_size, crop_images
            )
            training_curves_figure(
                staging / "training_curves.png", {m: Path(f"plots/train/{m}.csv") for m in trained}, evaluated["bicubic"]["valid"]["psnr_y"]
            )
        mlflow.log_artifacts(str(out))
        logger.info("report written to %s:\n%s", out / "report.md", "\n".join(sections))
