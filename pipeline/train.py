"""`srbench train MODEL`: train one model on data/prepared, write models/MODEL.pt and its curves."""

import csv
import io
import time
from pathlib import Path
from typing import Any

import torch
import typer

from pipeline.common import PARAMS_OPTION, Params, ParamError, logger, mlflow_run, write_json, write_text
from srbench.data import PatchSampler, load_pairs, read_meta
from srbench.inference import model_upscaler, pick_device
from srbench.losses import VGGContentLoss
from srbench.models import MODELS, Discriminator, build_model, count_parameters, save_model
from srbench.train import PRECISIONS, AdversarialObjective, PixelObjective, Precision, Schedule, fit

SAMPLE_IMAGES = 2  # SR validation images attached to each MLflow training run


def _read_settings(params: Params, model: str) -> dict[str, Any]:
    """Every param the training of ``model`` uses, checked before any work starts."""
    if model not in MODELS:
        raise ParamError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")
    settings = {
        "device": params.string("train.device"),
        "precision": params.choice("train.precision", PRECISIONS),
        "seed": params.integer("train.seed"),
        "log_every": params.integer("train.log_every", minimum=1),
        "validate_every": params.integer("train.validate_every", minimum=1),
        "checkpoint_every": params.integer("train.checkpoint_every", minimum=1),
        "arch": params.section(f"{model}.arch"),
        "steps": params.integer(f"{model}.steps", minimum=1),
        "batch_size": params.integer(f"{model}.batch_size", minimum=1),
        "patch_size": params.integer(f"{model}.patch_size", minimum=4),
        "lr": params.positive_float(f"{model}.lr"),
        "grad_clip": params.optional_positive_float(f"{model}.grad_clip"),
    }
    if model == "srgan":
        settings |= {
            "pretrain_steps": params.integer("srgan.pretrain_steps", minimum=0),
            "pretrain_lr": params.positive_float("srgan.pretrain_lr"),
            "vgg_layer": params.choice("srgan.vgg_layer", ("22", "54")),
            "vgg_weights": params.choice("srgan.vgg_weights", ("imagenet", "random")),
            "vgg_rescale": params.positive_float("srgan.vgg_rescale"),
            "adversarial_weight": params.positive_float("srgan.adversarial_weight"),
        }
    return settings


def _history_csv(history: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in history for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


def train(
    model: str = typer.Argument(..., help=f"One of: {', '.join(MODELS)}."),
    params_file: Path = PARAMS_OPTION,
    data: Path = typer.Option(Path("data/prepared"), help="Output of srbench prepare."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in checkpoints/."),
) -> None:
    """Train MODEL; weights to models/MODEL.pt, summary to metrics/train/, curves to plots/train/."""
    params = Params(params_file)
    settings = _read_settings(params, model)
    device = pick_device(settings["device"])
    meta = read_meta(data)
    scale = meta["scale"]
    torch.manual_seed(settings["seed"])
    network = build_model(model, scale, settings["arch"]).to(device)
    sampler = PatchSampler(data, settings["batch_size"], settings["patch_size"], settings["seed"])
    valid_pairs = load_pairs(data / "valid")
    precision = Precision(device, settings["precision"])
    schedule = dict(
        log_every=settings["log_every"], validate_every=settings["validate_every"], checkpoint_every=settings["checkpoint_every"]
    )
    if model == "srgan":  # build the discriminator and the VGG loss now: a missing VGG file fails here
        discriminator = Discriminator().to(device)
        content_loss = VGGContentLoss(
            settings["vgg_layer"], settings["vgg_weights"], settings["vgg_rescale"], seed=settings["seed"]
        ).to(device)

    logged = {key: value for key, value in settings.items() if key != "device"}
    logged |= {"device": str(device), "scale": scale, "n_parameters": count_parameters(network)}
    with mlflow_run("train", logged, model=model) as mlflow:
        if model == "srgan":
            mlflow.set_tag("vgg_weights", settings["vgg_weights"])

        def log_metrics(step: int, metrics: dict[str, float]) -> None:
            mlflow.log_metrics(metrics, step=step)

        started = time.perf_counter()
        if model == "srgan":
            pretrain = Schedule(steps=settings["pretrain_steps"], **schedule)
            logger.info("srgan phase 1/2: SRResNet with MSE for %d steps", pretrain.steps)
            history = fit(
                PixelObjective(network, settings["pretrain_lr"], precision, settings["grad_clip"]),
                sampler, pretrain, device, valid_pairs, Path("checkpoints/srgan-pretrain.pt"), resume, log_metrics,
            )
            logger.info("srgan phase 2/2: adversarial training for %d steps", settings["steps"])
            objective = AdversarialObjective(
                network, discriminator, content_loss, settings["lr"], settings["adversarial_weight"], precision
            )
            history += fit(
                objective, sampler, Schedule(steps=settings["steps"], **schedule), device, valid_pairs,
                Path("checkpoints/srgan.pt"), resume, log_metrics, step_offset=pretrain.steps,
            )
        else:
            objective = PixelObjective(network, settings["lr"], precision, settings["grad_clip"])
            history = fit(
                objective, sampler, Schedule(steps=settings["steps"], **schedule), device, valid_pairs,
                Path(f"checkpoints/{model}.pt"), resume, log_metrics,
            )
        training_seconds = time.perf_counter() - started

        last_validation = next(row for row in reversed(history) if "val_psnr_y" in row)  # fit validates its last step
        final = {key.removeprefix("val_"): value for key, value in last_validation.items() if key.startswith("val_")}
        summary = {
            "n_parameters": count_parameters(network),
            "training_seconds": round(training_seconds, 2),
            "steps": settings["steps"] + settings.get("pretrain_steps", 0),
            "device": str(device),
            **{f"val_{key}": value for key, value in final.items()},
        }
        if model == "srgan":
            summary["vgg_weights"] = settings["vgg_weights"]
        mlflow.log_metrics({"training_seconds": training_seconds, **final})
        upscale = model_upscaler(network, device)
        for pair in valid_pairs[:SAMPLE_IMAGES]:
            mlflow.log_image(upscale(pair.lr), artifact_file=f"samples/{pair.name}_sr.png")

        save_model(Path(f"models/{model}.pt"), network, model, scale, settings["arch"])
        write_json(Path(f"metrics/train/{model}.json"), summary)
        curves = Path(f"plots/train/{model}.csv")
        write_text(curves, _history_csv(history))
        mlflow.log_artifact(str(curves))
        mlflow.pytorch.log_model(
            network.cpu().eval(), name="model", serialization_format="pickle",
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )
        logger.info("%s: %d steps in %.1fs, validation psnr_y %.3f dB", model, summary["steps"], training_seconds, final["psnr_y"])
