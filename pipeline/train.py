"""`srbench train MODEL`: train one model on data/prepared, write models/MODEL.pt and its curves."""

import contextlib
import csv
import dataclasses
import io
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import typer

import srbench
from pipeline.common import PARAMS_OPTION, Params, ParamError, ensure_writable, logger, workspace_lock, write_json, write_text
from pipeline.tracking import mlflow_run, output_places
from srbench.data import ImagePair, load_pairs, read_meta
from srbench.distributed import World
from srbench.errors import SrbenchError
from srbench.files import atomic_path, file_digest, naming, tree_digest
from srbench.inference import describe_machine, model_upscaler, pick_device
from srbench.losses import VGGContentLoss
from srbench.models import GAN_MODELS, MODELS, check_arch, Discriminator, SRGANStudyDiscriminator, build_model, count_parameters, load_model, save_model
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
    read_checkpoint,
    use_deterministic_kernels,
)

SAMPLE_IMAGES = 2  # SR validation images attached to each MLflow training run
#: Where a training run writes: checked before it starts, so that a read-only place or a full disk
#: is found before the training rather than after it.
OUTPUT_FOLDERS = (Path("models"), Path("metrics/train"), Path("plots/train"), Path("checkpoints"))
CHECKPOINT = "checkpoints/{model}.pt"
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
        "seed": params.integer("train.seed", minimum=0, maximum=2**32 - 1),
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
        try:
            check_arch(model, settings["arch"])
        except SrbenchError as error:
            raise ParamError(f"{params.path}: {error}") from error
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


#: Settings that change how a run goes but not what it learns: a checkpoint resumes across them
#: (a resumed run on another device or number of processes is another machine's arithmetic, as
#: the README's reproducibility section says, not another recipe).
RUN_ONLY_SETTINGS = ("device", "nproc", "deterministic", "channels_last", "compile", "log_every", "validate_every", "checkpoint_every")
#: The code that shapes a trained model (the train stages' code deps in dvc.yaml).
TRAINING_CODE = ("train.py", "sampling.py", "distributed.py", "losses.py", "degradation.py", "models")
LOCK_HELD = "SRBENCH_TRAIN_LOCK_HELD"  # set by the launcher for the torchrun processes it starts


def fingerprint(model: str, settings: dict[str, Any], scale: int, data: Path, init: Path | None) -> dict[str, Any]:
    """What shapes a training run, kept in its checkpoints so that ``--resume`` continues only
    the same run: the model, its learning settings, the prepared data (meta.json, validation
    pairs, and sampled blocks of the patch stores), the training code, PyTorch's version and the
    ``--init`` weights (which also fix srgan's architecture)."""
    package = Path(srbench.__file__).parent
    code = [package / name for name in TRAINING_CODE if (package / name).is_file()]
    code += [path for name in TRAINING_CODE if (package / name).is_dir() for path in (package / name).glob("*.py")]
    stores = [data / "train_hr.npy", data / "train_lr.npy"]
    return {
        "model": model,
        "scale": scale,
        "settings": {key: value for key, value in settings.items() if key not in RUN_ONLY_SETTINGS},
        "data": tree_digest([data / "meta.json", *(data / "valid").rglob("*.png")], data) + tree_digest(stores, data, sample_blocks=64)[:16],
        "code": tree_digest([*code, Path(__file__)], package.parents[1]),
        "torch": str(torch.__version__),  # a TorchVersion object would not load weights-only
        "init": None if init is None else file_digest(init),
    }


def _lock(model: str, world: World) -> contextlib.AbstractContextManager:
    """One training of ``model`` at a time in this workspace (taken by rank 0, or by the launcher
    of the torchrun processes)."""
    name = f"train-{model}"
    if not world.main or os.environ.get(LOCK_HELD) == name:
        return contextlib.nullcontext()
    return workspace_lock(name, f"srbench train {model}")


def _launch_torchrun(model: str, nproc: int, arguments: list[str]) -> None:
    """Run this training under torchrun with ``nproc`` processes on this machine, holding the
    model's lock for them; exit as it exits. SIGTERM and Ctrl-C are passed on, so the processes
    end their MLflow run and exit."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "pipeline.cli", *arguments]
    logger.info("train.nproc = %d: %s", nproc, " ".join(command))
    with workspace_lock(f"train-{model}", f"srbench train {model}") as lock:
        # torchrun inherits the locked file, so the lock holds as long as it runs, even if this
        # launcher is killed
        process = subprocess.Popen(command, env={**os.environ, LOCK_HELD: f"train-{model}"}, pass_fds=(lock.fileno(),))
        try:
            returncode = process.wait()
        except BaseException:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raise
    raise typer.Exit(returncode)


def train(
    model: str = typer.Argument(..., help=f"One of: {', '.join(MODELS)}."),
    params_file: Path = PARAMS_OPTION,
    data: Path = typer.Option(Path("data/prepared"), help="Output of srbench prepare."),
    init: Path = typer.Option(None, "--init", help="srgan only: the trained SRResNet weights it starts from."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from checkpoints/MODEL.pt, if it was made by this same run (params, data, code)."
    ),
) -> None:
    """Train MODEL; weights to models/MODEL.pt, summary to metrics/train/, curves to plots/train/.
    With train.nproc > 1 (or under torchrun) the processes train it data-parallel; rank 0 writes.
    One training of MODEL at a time in a workspace; a finished run removes its checkpoint."""
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
    if init is not None and not init.is_file():
        raise ParamError(f"--init {init}: file not found (train srresnet first)")
    ensure_writable(*OUTPUT_FOLDERS, *output_places())
    run_fingerprint = fingerprint(model, settings, scale, data, init)
    checkpoint = Path(CHECKPOINT.format(model=model))
    if resume and world.main and checkpoint.is_file():
        read_checkpoint(checkpoint, run_fingerprint)  # another run's checkpoint: one line, before anything starts
    if settings["nproc"] > 1 and "WORLD_SIZE" not in os.environ:  # not yet under torchrun
        arguments = ["train", model, "--params", str(params_file), "--data", str(data)]
        arguments += (["--init", str(init)] if init else []) + (["--resume"] if resume else [])
        _launch_torchrun(model, settings["nproc"], arguments)
    device = world.device(device)
    with _lock(model, world):
        world.start(device)
        try:
            _train(model, settings, scale, data, init, resume, device, world, run_fingerprint)
        finally:
            world.stop()


def _train(
    model: str,
    settings: dict[str, Any],
    scale: int,
    data: Path,
    init: Path | None,
    resume: bool,
    device: torch.device,
    world: World,
    run_fingerprint: dict[str, Any],
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
    checkpoint = Path(CHECKPOINT.format(model=model))
    if not world.main:
        fit(objective, sampler, schedule, device, valid_pairs, checkpoint, resume, world=world, fingerprint=run_fingerprint)
        return

    logged = {key: value for key, value in settings.items() if key != "device"}
    logged |= {"device": str(device), "scale": scale, "n_parameters": count_parameters(network), "init": str(init or ""), "world_size": world.size}
    logged |= describe_machine(device)
    with mlflow_run("train", logged, model=model) as mlflow:
        if model in GAN_MODELS:
            mlflow.set_tag("content_loss", describe_content_loss(settings))

        def log_metrics(step: int, metrics: dict[str, float]) -> None:
            mlflow.log_metrics(metrics, step=step)

        history = fit(objective, sampler, schedule, device, valid_pairs, checkpoint, resume, log_metrics, world=world, fingerprint=run_fingerprint)
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
        _write_outputs(mlflow, model, network, scale, settings["arch"], summary, _history_csv(history), valid_pairs[:SAMPLE_IMAGES], device)
        checkpoint.unlink(missing_ok=True)  # the run is done: nothing left for a later --resume to mistake for it
        logger.info("%s: %d steps in %.1fs, validation psnr_y %.3f dB", model, summary["steps"], training_seconds, summary["val_psnr_y"])


def _write_outputs(
    mlflow: Any,
    model: str,
    network: torch.nn.Module,
    scale: int,
    arch: dict[str, Any],
    summary: dict[str, Any],
    curves: str,
    samples: list[ImagePair],
    device: torch.device,
) -> None:
    """models/MODEL.pt, metrics/train/MODEL.json and plots/train/MODEL.csv, each written beside
    its place and all renamed together once every one is written and the MLflow run holds the
    samples, curves and model; SIGTERM and Ctrl-C wait until the renames are done."""
    places = (Path(f"models/{model}.pt"), Path(f"metrics/train/{model}.json"), Path(f"plots/train/{model}.csv"))
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    try:
        with contextlib.ExitStack() as stack:
            weights, metrics, plots = (stack.enter_context(atomic_path(place)) for place in places)
            upscale = model_upscaler(network, device)
            for pair in samples:
                mlflow.log_image(upscale(pair.lr), artifact_file=f"samples/{pair.name}_sr.png")
            mlflow.log_text(curves, f"{model}.csv")
            with naming(places[0]):
                save_model(weights, network, model, scale, arch)
            with naming(places[1]):
                write_json(metrics, summary)
            with naming(places[2]):
                write_text(plots, curves)
            mlflow.pytorch.log_model(
                network.cpu().eval(), name="model", serialization_format="pickle",
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            )
            signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # leaving the block renames all three
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
