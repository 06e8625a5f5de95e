"""`srbench train MODEL`: train one model on data/prepared, write models/MODEL.pt and its curves."""

import csv
import dataclasses
import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import typer

from pipeline.common import PARAMS_OPTION, Params, ParamError, logger, write_json, write_text
from pipeline.tracking import mlflow_run
from srbench.data import load_pairs, read_meta
from srbench.distributed import World
from srbench.inference import describe_machine, model_upscaler, pick_device
from srbench.losses import VGGContentLoss
from srbench.models import GAN_MODELS, MODELS, Discriminator, SRGANStudyDiscriminator, build_model, count_parameters, load_model, save_model
from srbench.sampling import PatchSampler
from srbench.train import (
    CLIP_MODES,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    AdversarialObjective,
    Objective,
    OptimizerConfig,
    PixelObjective,
    Precision,
    Schedule,
    fit,
    use_deterministic_kernels,
)

SAMPLE_IMAGES = 2  # SR validation images attached to each MLflow training run
CONTENT_LOSSES = ("mse", "vgg22", "vgg34", "vgg54")  # Ledig et al. 2017, Table 1: SRGAN-MSE, -VGG22, -VGG54; vgg34: the study's


def _scaled(steps: int, budget: float) -> int:
    return max(1, round(steps * budget))


def _optimizer(params: Params, key: str, budget: float, steps: int) -> OptimizerConfig:
    """``MODEL.optimizer``: name and lr are required; the rest default to OptimizerConfig's values.
    Step counts (``decay_every``, ``warmup_steps``) scale with the budget; a cosine schedule
    spans the run's ``steps``."""
    section = params.section(key)
    fields = {field.name for field in dataclasses.fields(OptimizerConfig)} - {"total_steps"}
    unknown = sorted(set(section) - fields)
    if unknown:
        raise ParamError(f"{params.path}: {key}.{unknown[0]}: unknown setting (accepted: {', '.join(sorted(fields))})")
    values: dict[str, Any] = {"name": params.choice(f"{key}.name", OPTIMIZERS), "lr": params.positive_float(f"{key}.lr")}
    for name in ("momentum", "weight_decay"):
        if name in section:
            values[name] = params.non_negative_float(f"{key}.{name}")
    if "decay_factor" in section:
        values["decay_factor"] = params.positive_float(f"{key}.decay_factor")
    for name in ("last_layer_lr", "bias_lr", "grad_clip"):
        if name in section:
            values[name] = params.optional_positive_float(f"{key}.{name}")
    if "decay_every" in section:
        decay_every = params.optional_integer(f"{key}.decay_every", minimum=1)
        values["decay_every"] = None if decay_every is None else _scaled(decay_every, budget)
    if "warmup_steps" in section:
        values["warmup_steps"] = _scaled(params.integer(f"{key}.warmup_steps", minimum=0), budget)
    if "grad_clip_mode" in section:
        values["grad_clip_mode"] = params.choice(f"{key}.grad_clip_mode", CLIP_MODES)
    if "schedule" in section:
        values["schedule"] = params.choice(f"{key}.schedule", SCHEDULES)
    return OptimizerConfig(**values, total_steps=steps)


def read_settings(params: Params, model: str, budget: float | None = None) -> dict[str, Any]:
    """Every param the training of ``model`` uses, checked before any work starts; ``budget``
    replaces ``train.budget`` (the fraction of the recipe's steps and schedule to run)."""
    if model not in MODELS:
        raise ParamError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")
    budget = params.positive_float("train.budget") if budget is None else budget
    steps = _scaled(params.integer(f"{model}.steps", minimum=1), budget)
    settings = {
        "device": params.string("train.device"),
        "precision": params.choice("train.precision", PRECISIONS),
        "deterministic": params.choice("train.deterministic", (True, False)),
        "channels_last": params.choice("train.channels_last", (True, False)),
        "compile": params.choice("train.compile", (True, False)),
        "nproc": params.integer("train.nproc", minimum=1),
        "seed": params.integer("train.seed"),
        "log_every": params.integer("train.log_every", minimum=1),
        "validate_every": params.integer("train.validate_every", minimum=1),
        "checkpoint_every": params.integer("train.checkpoint_every", minimum=1),
        "budget": budget,
        "steps": steps,
        "batch_size": params.integer(f"{model}.batch_size", minimum=1),
        "patch_size": params.integer(f"{model}.patch_size", minimum=4),
        "optimizer": dataclasses.asdict(_optimizer(params, f"{model}.optimizer", budget, steps)),
    }
    if model not in GAN_MODELS:
        settings["loss_scale"] = params.positive_float(f"{model}.loss_scale")
    if model != "srgan":  # srgan keeps the architecture of the SRResNet it starts from
        settings["arch"] = params.section(f"{model}.arch")
    if model in GAN_MODELS:
        settings |= {
            "content_loss": params.choice(f"{model}.content_loss", CONTENT_LOSSES),
            "adversarial_weight": params.positive_float(f"{model}.adversarial_weight"),
        }
        if settings["content_loss"] != "mse":
            settings |= {
                "vgg_weights": params.choice(f"{model}.vgg_weights", ("imagenet", "random")),
                "vgg_rescale": params.positive_float(f"{model}.vgg_rescale"),
            }
    return settings


def describe_content_loss(settings: dict[str, Any]) -> str:
    """The GAN's content loss in words: ``mse``, or e.g. ``vgg54 (imagenet weights)``."""
    if settings["content_loss"] == "mse":
        return "mse"
    return f"{settings['content_loss']} ({settings['vgg_weights']} weights)"


def _history_csv(history: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in history for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


def _srresnet_to_start_from(init: Path, scale: int, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """srgan's starting point: the trained SRResNet in ``init`` and its architecture."""
    network, meta = load_model(init, device)
    if meta["name"] != "srresnet" or meta["scale"] != scale:
        raise ParamError(f"--init {init}: holds {meta['name']} x{meta['scale']}, expected srresnet x{scale}")
    return network.train(), meta["arch"]


def _training_wrapper(settings: dict[str, Any], device: torch.device, world: World) -> Callable[[torch.nn.Module], torch.nn.Module]:
    """How the training step runs a network: across the processes of ``world`` (DDP), then
    through torch.compile when ``train.compile`` asks for it."""

    def wrap(network: torch.nn.Module) -> torch.nn.Module:
        network = world.wrap(network, device)
        return torch.compile(network) if settings["compile"] else network

    return wrap


def memory_format(settings: dict[str, Any]) -> torch.memory_format:
    """``train.channels_last``: NHWC activations and weights (faster convolutions on tensor cores and oneDNN)."""
    return torch.channels_last if settings["channels_last"] else torch.contiguous_format


def build_objective(
    model: str, network: torch.nn.Module, settings: dict[str, Any], device: torch.device, world: World = World()
) -> Objective:
    """What ``model`` is trained to minimise with its recipe's optimiser: the pixel loss, or the
    adversarial game with its content loss, pixel MSE or VGG features (built here, so a missing
    VGG file fails before any training). Its networks are put in the recipe's memory format and
    trained through DDP (over ``world``) and torch.compile as the settings say."""
    precision = Precision(device, settings["precision"])
    optimizer = OptimizerConfig(**settings["optimizer"])
    network.to(memory_format=memory_format(settings))
    if model not in GAN_MODELS:
        objective: Objective = PixelObjective(network, optimizer, precision, settings["loss_scale"])
    else:
        discriminator = Discriminator() if model == "srgan" else SRGANStudyDiscriminator(input_size=settings["patch_size"])
        if settings["content_loss"] == "mse":
            content_loss: torch.nn.Module = torch.nn.MSELoss()
        else:
            layer = settings["content_loss"].removeprefix("vgg")
            content_loss = VGGContentLoss(layer, settings["vgg_weights"], settings["vgg_rescale"], seed=settings["seed"])
        discriminator.to(device, memory_format=memory_format(settings))
        objective = AdversarialObjective(
            network, discriminator, content_loss.to(device), optimizer, settings["adversarial_weight"], precision
        )
    objective.wrap(_training_wrapper(settings, device, world))
    return objective


def build_sampler(data: Path, settings: dict[str, Any], device: torch.device, world: World = World()) -> PatchSampler:
    """The recipe's batches, cut on ``device`` in its memory format; this rank's rows of each."""
    return PatchSampler(
        data, settings["batch_size"], settings["patch_size"], settings["seed"],
        device=device, shard=(world.rank, world.size), memory_format=memory_format(settings),
    )


def _launch_torchrun(nproc: int, arguments: list[str]) -> None:
    """Run this training under torchrun with ``nproc`` processes on this machine; exit as it exits."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "pipeline.cli", *arguments]
    logger.info("train.nproc = %d: %s", nproc, " ".join(command))
    raise typer.Exit(subprocess.run(command, check=False).returncode)


def train(
    model: str = typer.Argument(..., help=f"One of: {', '.join(MODELS)}."),
    params_file: Path = PARAMS_OPTION,
    data: Path = typer.Option(Path("data/prepared"), help="Output of srbench prepare."),
    init: Path = typer.Option(None, "--init", help="srgan only: the trained SRResNet weights it starts from."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in checkpoints/."),
) -> None:
    """Train MODEL; weights to models/MODEL.pt, summary to metrics/train/, curves to plots/train/.
    With train.nproc > 1 (or under torchrun) the processes train it data-parallel; rank 0 writes."""
    params = Params(params_file)
    settings = read_settings(params, model)
    if (model == "srgan") != (init is not None):
        raise ParamError("srgan starts from a trained SRResNet: pass --init models/srresnet.pt (and only for srgan)")
    world = World.from_environment()
    processes = max(world.size, settings["nproc"])
    if settings["batch_size"] % processes:
        raise ParamError(f"{params.path}: {model}.batch_size = {settings['batch_size']}: must be a multiple of the {processes} processes")
    scale = read_meta(data)["scale"]
    device = pick_device(settings["device"])
    if device.type == "cuda" and settings["nproc"] > torch.cuda.device_count():
        raise ParamError(f"{params.path}: train.nproc = {settings['nproc']}: this machine has {torch.cuda.device_count()} GPU(s)")
    if settings["nproc"] > 1 and "WORLD_SIZE" not in os.environ:  # not yet under torchrun
        arguments = ["train", model, "--params", str(params_file), "--data", str(data)]
        _launch_torchrun(settings["nproc"], arguments + (["--init", str(init)] if init else []) + (["--resume"] if resume else []))
    device = world.device(device)
    world.start(device)
    try:
        _train(model, settings, scale, data, init, resume, device, world)
    finally:
        world.stop()


def _train(
    model: str, settings: dict[str, Any], scale: int, data: Path, init: Path | None, resume: bool, device: torch.device, world: World
) -> None:
    """One process's training; rank 0 also logs the MLflow run and writes every output."""
    use_deterministic_kernels(settings["deterministic"])
    torch.manual_seed(settings["seed"])
    if init is None:
        network = build_model(model, scale, settings["arch"]).to(device)
    else:
        network, settings["arch"] = _srresnet_to_start_from(init, scale, device)
    sampler = build_sampler(data, settings, device, world)
    valid_pairs = load_pairs(data / "valid")
    objective = build_objective(model, network, settings, device, world)
    schedule = Schedule(
        steps=settings["steps"],
        log_every=settings["log_every"],
        validate_every=settings["validate_every"],
        checkpoint_every=settings["checkpoint_every"],
    )
    checkpoint = Path(f"checkpoints/{model}.pt")
    if not world.main:
        fit(objective, sampler, schedule, device, valid_pairs, checkpoint, resume, world=world)
        return

    logged = {key: value for key, value in settings.items() if key != "device"}
    logged |= {"device": str(device), "scale": scale, "n_parameters": count_parameters(network), "init": str(init or ""), "world_size": world.size}
    logged |= describe_machine(device)
    with mlflow_run("train", logged, model=model) as mlflow:
        if model in GAN_MODELS:
            mlflow.set_tag("content_loss", describe_content_loss(settings))

        def log_metrics(step: int, metrics: dict[str, float]) -> None:
            mlflow.log_metrics(metrics, step=step)

        history = fit(objective, sampler, schedule, device, valid_pairs, checkpoint, resume, log_metrics, world=world)
        training_seconds = history[-1]["seconds"]  # the training loop's time, validation excluded, across resumes

        last_validation = next(row for row in reversed(history) if "val_psnr_y" in row)  # fit validates its last step
        final = {key.removeprefix("val_"): value for key, value in last_validation.items() if key.startswith("val_")}
        summary = {
            "n_parameters": count_parameters(network),
            "training_seconds": round(training_seconds, 2),
            "steps": settings["steps"],
            "device": str(device),
            "world_size": world.size,
            **{f"val_{key}": value for key, value in final.items()},
        }
        if model in GAN_MODELS:
            summary["content_loss"] = describe_content_loss(settings)
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
