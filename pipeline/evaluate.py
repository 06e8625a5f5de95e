"""`srbench evaluate MODEL`: PSNR/SSIM (Y channel, literature convention), the mean error of each
colour channel and, when its weights load, LPIPS of a model, of bicubic or of a published
checkpoint of another architecture (`srbench evaluate NAME --weights FILE`), on every prepared
test set."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pipeline.layout import Outputs, check_external_name, external_outputs, read_seeds
from pipeline.outputs import ensure_writable, output_folder, write_json
from pipeline.params import PARAMS_OPTION, ParamError, Params
from pipeline.process import logger, workspace_lock
from pipeline.tracking import log_dataset, mlflow_run, output_places, registered_version
from srbench.files import file_digest, staged_folder, tree_digest
from srbench.names import BENCHMARK_SETS, SCALES, model_names

if TYPE_CHECKING:
    import numpy as np
    import torch

    from srbench.data import ImagePair
    from srbench.inference import Upscaler
    from srbench.perceptual import LPIPS

SAMPLE_IMAGES = 3  # SR images per test set attached to the MLflow run
HEADLINE = ("psnr_y", "ssim_y")  # of each test set, in metrics/eval/ (what `dvc metrics show` lists)


def metric_names(set_names: list[str]) -> dict[str, str]:
    """The prefix of each test set's metrics in the MLflow run: none for the first (the held-out
    ``valid`` split, or the ``--hr-dir`` folder), whose ``psnr_y`` sits in the same column as the
    training runs' validation ``psnr_y``, so one column ranks every model and bicubic; ``SET_``
    for each benchmark set after it (``Set5_psnr_y``). Each is logged with its data set."""
    return {name: "" if index == 0 else f"{name}_" for index, name in enumerate(set_names)}


def evaluation_sets(data: Path) -> dict[str, Path]:
    """The prepared test sets: ``valid`` (the held-out split), then the benchmark sets prepared."""
    found = {"valid": data / "valid"}
    for name in BENCHMARK_SETS:
        if (data / "benchmark" / name).is_dir():
            found[name] = data / "benchmark" / name
    return found


def _write_results(
    out: Path, outputs: dict[str, dict[str, np.ndarray]], per_image: dict[str, dict], evaluation: dict, summary: dict
) -> None:
    """``out``/<set>/sr/*.png, <set>/per_image.json, evaluation.json and ``summary`` (every mean
    of every set) as metrics.json, written beside ``out`` and swapped in whole."""
    from srbench.images import write_png

    with staged_folder(out) as staging:
        for set_name, images in outputs.items():
            for name, sr in images.items():
                write_png(staging / set_name / "sr" / f"{name}.png", sr)
            write_json(staging / set_name / "per_image.json", per_image[set_name])
        write_json(staging / "evaluation.json", evaluation)
        write_json(staging / "metrics.json", summary)


def _worst_colour_image(per_image: dict[str, dict[str, float]]) -> str:
    """The image whose mean error in some colour channel is the largest (the first on ties)."""
    return max(per_image, key=lambda name: per_image[name]["worst_channel_error"])


def _score(
    set_name: str, upscale: Upscaler, pairs: list[ImagePair], scale: int, device: torch.device | None, lpips: LPIPS | None
) -> tuple[dict, dict, dict]:
    """Mean metrics (numbers only: no ``lpips`` key when LPIPS is unavailable) with the largest
    ``worst_channel_error`` of any image, per-image metrics and SR images of one test set."""
    from srbench.inference import evaluate_pairs, mean_metrics

    per_image, outputs, seconds = evaluate_pairs(upscale, pairs, scale, device, description=f"evaluate {set_name}")
    if lpips is not None:
        for pair in pairs:
            per_image[pair.name]["lpips"] = lpips(outputs[pair.name], pair.hr)
    megapixels = sum(sr.shape[0] * sr.shape[1] for sr in outputs.values()) / 1e6
    worst = per_image[_worst_colour_image(per_image)]["worst_channel_error"]
    summary = {**mean_metrics(per_image), "max_worst_channel_error": worst, "megapixels_per_second": megapixels / seconds, "n_images": len(pairs)}
    return summary, per_image, outputs


def evaluate(
    model: str = typer.Argument(
        ..., help=f"bicubic, one of: {', '.join(model_names())}, or a name for the published checkpoint given with --weights."
    ),
    seed: int = typer.Option(None, min=0, max=2**32 - 1, help="The training seed of the model to evaluate [default: the first of train.seeds]."),
    params_file: Path = PARAMS_OPTION,
    data: Path = typer.Option(Path("data/prepared"), help="Output of srbench prepare: valid/ and benchmark/<set>/ pairs."),
    hr_dir: Path = typer.Option(None, "--hr-dir", help="Evaluate on this folder of HR images instead, degraded like the training data."),
    out: Path = typer.Option(None, help="Folder for SR images, per-image and mean metrics [default: results/seedN/MODEL]."),
    weights: Path = typer.Option(
        None, help="Model weights [default: models/seedN/MODEL.pt]; with a NAME that is not a srbench model, a published "
        "checkpoint (.pth, .pt, .ckpt, .safetensors) of EDSR, RCAN, SwinIR, ESRGAN, HAT, ... (detected by spandrel)."
    ),
    scale: int = typer.Option(None, help="Scale for bicubic with --hr-dir [default: the prepared data's]; with a published checkpoint, checked against its own."),
) -> None:
    """Super-resolve every test set, write SR PNGs, per-image and mean metrics (PSNR, SSIM, mean
    error of each colour channel and the largest on any image, Keras accuracy, LPIPS when its
    weights load), throughput, and how LPIPS and the device ran (evaluation.json); the headline
    (Y-PSNR, Y-SSIM) also to metrics/eval/seedN/MODEL.json. A published checkpoint NAME: to
    results/external/NAME and metrics/eval/external/NAME.json."""
    params = Params(params_file)
    device_setting = params.string("evaluate.device")
    use_lpips = params.choice("evaluate.lpips", (True, False))
    external = model != "bicubic" and model not in model_names()
    if external and weights is None:
        raise ParamError(f"unknown model {model!r}: choose bicubic or one of {', '.join(model_names())} (or name a published checkpoint given with --weights FILE)")
    if external:
        check_external_name(model, "srbench evaluate")
    if (model == "bicubic" or external) and seed is not None:
        raise ParamError(f"--seed {seed}: {'bicubic trains nothing' if model == 'bicubic' else 'a published checkpoint was not trained here'}, so it has no seed")
    if model != "bicubic" and not external and seed is None:
        seed = read_seeds(params)[0]
    run = external_outputs(model) if external else Outputs(model, seed)
    if scale is not None and scale not in SCALES:
        raise ParamError(f"--scale {scale}: choose one of {', '.join(map(str, SCALES))}")
    if hr_dir is not None and out is None:
        raise ParamError("--out is required with --hr-dir (the default folders belong to the DVC pipeline)")
    if out is not None:
        out = output_folder("--out", out, run.results, "evaluation.json")

    from srbench.external import load_checkpoint
    from srbench.data import load_pairs, pairs_from_hr_folder, read_meta
    from srbench.inference import bicubic_upscaler, model_upscaler, pick_device
    from srbench.models import load_model
    from srbench.perceptual import load_lpips

    device = pick_device(device_setting)
    out = out or run.results
    headline = None if hr_dir is not None else run.headline
    prepared = read_meta(data) if hr_dir is None or (data / "meta.json").is_file() else None  # --hr-dir needs no prepared data
    rounding = prepared.bicubic_rounding if prepared else "per_pass"

    checkpoint: dict = {}
    if model == "bicubic":
        scale = scale or (prepared or read_meta(data)).scale  # no prepared data: read_meta's one line
        upscale, used_device = bicubic_upscaler(scale, rounding), None
    elif external:
        network, detected = load_checkpoint(weights, device)
        expected = scale if hr_dir is not None else prepared.scale
        if expected is not None and detected["scale"] != expected:
            where = "--scale" if hr_dir is not None else f"the prepared data in {data} (prepare.scale)"
            raise ParamError(f"{weights}: a x{detected['scale']} {detected['architecture']} checkpoint; {where} is x{expected}")
        checkpoint = {"file": str(weights), "sha256": file_digest(weights), **detected}
        scale, upscale, used_device = detected["scale"], model_upscaler(network, device), device
    else:
        network, meta = load_model(weights or run.weights, device, expected=model)
        if scale is not None and scale != meta["scale"]:
            raise ParamError(f"--scale {scale}: {weights or run.weights} holds {model} x{meta['scale']}, which upscales by its own scale (leave --scale out)")
        if prepared is not None and hr_dir is None and prepared.scale != meta["scale"]:
            raise ParamError(f"{weights or run.weights}: holds {model} x{meta['scale']}; the prepared data in {data} is x{prepared.scale} (prepare.scale)")
        scale, upscale, used_device = meta["scale"], model_upscaler(network, device), device
    if hr_dir is not None:
        sources, pairs = {hr_dir.name: hr_dir}, {hr_dir.name: pairs_from_hr_folder(hr_dir, scale, rounding)}
    else:
        sources = evaluation_sets(data)
        pairs = {name: load_pairs(folder) for name, folder in sources.items()}
    lpips, unavailable = load_lpips(device=device) if use_lpips else (None, "off (evaluate.lpips: false)")
    evaluation = {"lpips": unavailable or "available (alex)", "device": str(used_device or "cpu")} | ({"checkpoint": checkpoint} if checkpoint else {})

    logged = {"model": model, "seed": "" if seed is None else seed, "scale": scale, "device": evaluation["device"], "test_sets": ",".join(pairs), "bicubic_rounding": rounding}
    logged |= {f"checkpoint_{key}": value for key, value in checkpoint.items() if key != "tags"}
    ensure_writable(out.parent, *([] if headline is None else [headline.parent]), *output_places())
    lock = "evaluate-" + hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]  # one evaluation into each output folder at a time
    weights_digest = None if model == "bicubic" or external else file_digest(weights or run.weights)
    with workspace_lock(lock, f"an evaluation into {out}"), mlflow_run("evaluate", logged, model=model, seed=seed) as mlflow:
        mlflow.set_tag("lpips", evaluation["lpips"])
        version = weights_digest and registered_version(mlflow, model, weights_digest)
        if version:
            mlflow.set_tag("model_version", version[1])  # and each metric names the logged model: the run's Models column
        elif weights_digest:
            logger.info("%s: not a version in this workspace's Model Registry (trained elsewhere?): the run names no model", weights or run.weights)
        link = {"model_id": version[0]} if version else {}
        prefixes = metric_names(list(pairs))
        summary: dict = {}
        per_image, images_out = {}, {}
        for set_name, set_pairs in pairs.items():
            files = sorted(path for path in sources[set_name].rglob("*") if path.is_file())
            dataset = log_dataset(mlflow, sources[set_name], tree_digest(files, sources[set_name])[:16], "evaluation")
            summary[set_name], per_image[set_name], images_out[set_name] = _score(set_name, upscale, set_pairs, scale, used_device, lpips)
            scores = summary[set_name]
            mlflow.log_metrics({f"{prefixes[set_name]}{key}": value for key, value in scores.items()}, dataset=dataset, **link)
            worst = _worst_colour_image(per_image[set_name])
            logger.info(
                "%s on %s (x%d, %d images): psnr_y %.3f dB, ssim_y %.4f, psnr_rgb %.3f dB, "
                "mean colour error r/g/b %+.2f/%+.2f/%+.2f levels (worst image %s: %.2f), lpips %s, keras accuracy %.4f, %.3f MP/s",
                model, set_name, scale, len(set_pairs), scores["psnr_y"], scores["ssim_y"], scores["psnr_rgb"],
                scores["mean_error_r"], scores["mean_error_g"], scores["mean_error_b"], worst, scores["max_worst_channel_error"],
                f"{scores['lpips']:.4f}" if "lpips" in scores else "–", scores["keras_accuracy"], scores["megapixels_per_second"],
            )
        _write_results(out, images_out, per_image, evaluation, summary)
        if headline is not None:
            write_json(headline, {set_name: {key: scores[key] for key in HEADLINE} for set_name, scores in summary.items()})
        for set_name, images in images_out.items():
            mlflow.log_artifact(str(out / set_name / "per_image.json"), artifact_path=set_name)
            for name in list(images)[:SAMPLE_IMAGES]:
                mlflow.log_artifact(str(out / set_name / "sr" / f"{name}.png"), artifact_path=f"{set_name}/sr")
