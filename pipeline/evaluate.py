"""`srbench evaluate MODEL`: PSNR/SSIM (Y channel, literature convention) of a model or of bicubic."""

import shutil
from pathlib import Path

import typer

from pipeline.common import PARAMS_OPTION, Params, ParamError, logger, mlflow_run, write_json
from srbench.data import load_pairs, pairs_from_hr_folder, read_meta
from srbench.images import write_png
from srbench.inference import bicubic_upscaler, evaluate_pairs, mean_metrics, model_upscaler, pick_device
from srbench.models import MODELS, load_model

SAMPLE_IMAGES = 3  # SR images attached to the MLflow run


def evaluate(
    model: str = typer.Argument(..., help=f"bicubic or one of: {', '.join(MODELS)}."),
    params_file: Path = PARAMS_OPTION,
    data: Path = typer.Option(Path("data/prepared"), help="Output of srbench prepare (its valid/ pairs are the test set)."),
    hr_dir: Path = typer.Option(None, "--hr-dir", help="Evaluate on this folder of HR images instead, degraded like the training data."),
    out: Path = typer.Option(None, help="Folder for SR images and per-image metrics [default: results/MODEL]."),
    weights: Path = typer.Option(None, help="Model weights [default: models/MODEL.pt]."),
    scale: int = typer.Option(None, help="Scale for bicubic with --hr-dir [default: the prepared data's]."),
) -> None:
    """Super-resolve the test images, write SR PNGs, per-image and mean metrics, and throughput."""
    params = Params(params_file)
    device = pick_device(params.string("evaluate.device"))
    if model != "bicubic" and model not in MODELS:
        raise ParamError(f"unknown model {model!r}: choose bicubic or one of {', '.join(MODELS)}")
    if hr_dir is not None and out is None:
        raise ParamError("--out is required with --hr-dir (the default folders belong to the DVC pipeline)")
    out = out or Path(f"results/{model}")
    metrics_path = out / "metrics.json" if hr_dir is not None else Path(f"metrics/eval/{model}.json")

    if model == "bicubic":
        scale = scale or read_meta(data)["scale"]
        upscale, used_device = bicubic_upscaler(scale), None
    else:
        network, meta = load_model(weights or Path(f"models/{model}.pt"), device)
        scale, upscale, used_device = meta["scale"], model_upscaler(network, device), device
    pairs = pairs_from_hr_folder(hr_dir, scale) if hr_dir is not None else load_pairs(data / "valid")
    test_set = str(hr_dir) if hr_dir is not None else "validation"

    logged = {"model": model, "scale": scale, "device": str(used_device or "cpu"), "test_set": test_set, "n_images": len(pairs)}
    with mlflow_run("evaluate", logged, model=model) as mlflow:
        per_image, outputs, seconds = evaluate_pairs(upscale, pairs, scale, used_device)
        megapixels = sum(sr.shape[0] * sr.shape[1] for sr in outputs.values()) / 1e6
        summary = {**mean_metrics(per_image), "megapixels_per_second": megapixels / seconds, "n_images": len(pairs)}

        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for name, sr in outputs.items():
            write_png(tmp / "sr" / f"{name}.png", sr)
        write_json(tmp / "per_image.json", per_image)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        write_json(metrics_path, summary)

        mlflow.log_metrics(summary)
        mlflow.log_artifact(str(out / "per_image.json"))
        for name in list(outputs)[:SAMPLE_IMAGES]:
            mlflow.log_artifact(str(out / "sr" / f"{name}.png"), artifact_path="sr")
        logger.info(
            "%s on %s (x%d): psnr_y %.3f dB, ssim_y %.4f, psnr_rgb %.3f dB, %.3f MP/s",
            model, test_set, scale, summary["psnr_y"], summary["ssim_y"], summary["psnr_rgb"], summary["megapixels_per_second"],
        )
