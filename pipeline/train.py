"""`srbench train MODEL --seed N`: train one model on data/prepared, write models/seedN/MODEL.pt,
its model card, its training summary (with what it cost) and its curves, and register it in
MLflow's Model Registry."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

import srbench
from pipeline.common import PARAMS_OPTION, Params, ParamError, ensure_writable, logger, wait_passing_signals, workspace_lock, write_json, write_text
from pipeline.layout import Outputs, read_seeds
from pipeline.tracking import log_dataset, mlflow_run, output_places
from srbench.errors import SrbenchError
from srbench.files import atomic_path, file_digest, naming, tree_digest
from srbench.names import GAN_MODELS, MODEL_NAMES

if TYPE_CHECKING:  # torch and the modules importing it load inside the commands: `srbench --help` stays fast
    import torch

    from srbench.data import ImagePair
    from srbench.distributed import World
    from srbench.sampling import PatchSampler
    from srbench.train import Objective, OptimizerConfig

SAMPLE_IMAGES = 2  # SR validation images attached to each MLflow training run
CONTENT_LOSSES = ("mse", "vgg22", "vgg34", "vgg54")  # Ledig et al. 2017, Table 1: SRGAN-MSE, -VGG22, -VGG54; vgg34: the study's


def _scaled(steps: int, budget: float) -> int:
    return max(1, round(steps * budget))


def _optimizer(params: Params, key: str, budget: float, steps: int) -> OptimizerConfig:
    """``MODEL.optimizer``: name and lr are required; the rest default to OptimizerConfig's values.
    Step counts (``decay_every``, ``warmup_steps``) scale with the budget; a cosine schedule
    spans the run's ``steps``."""
    from srbench.train import CLIP_MODES, OPTIMIZERS, SCHEDULES, OptimizerConfig

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


def read_settings(params: Params, model: str, budget: float | None = None, seed: int | None = None) -> dict[str, Any]:
    """Every param the training of ``model`` uses, checked before any work starts; ``budget``
    replaces ``train.budget`` (the fraction of the recipe's steps and schedule to run), ``seed``
    the first of ``train.seeds``."""
    if model not in MODEL_NAMES:
        raise ParamError(f"unknown model {model!r}: choose one of {', '.join(MODEL_NAMES)}")
    from srbench.models import CHANNELS, check_arch
    from srbench.train import PRECISIONS

    budget = params.positive_float("train.budget") if budget is None else budget
    seeds = read_seeds(params)  # checked even when ``seed`` replaces them
    steps = _scaled(params.integer(f"{model}.steps", minimum=1), budget)
    settings = {
        "device": params.string("train.device"),
        "precision": params.choice("train.precision", PRECISIONS),
        "deterministic": params.choice("train.deterministic", (True, False)),
        "channels_last": params.choice("train.channels_last", (True, False)),
        "compile": params.choice("train.compile", (True, False)),
        "nproc": params.integer("train.nproc", minimum=1),
        "seed": seeds[0] if seed is None else seed,
        "log_every": params.integer("train.log_every", minimum=1),
        "validations": params.integer("train.validations", minimum=1),
        "checkpoint_every": params.integer("train.checkpoint_every", minimum=1),
        "budget": budget,
        "steps": steps,
        "batch_size": params.integer(f"{model}.batch_size", minimum=1),
        "patch_size": params.integer(f"{model}.patch_size", minimum=4),
        "optimizer": dataclasses.asdict(_optimizer(params, f"{model}.optimizer", budget, steps)),
    }
    channels_key = "srresnet.channels" if model == "srgan" else f"{model}.channels"  # srgan goes on from the SRResNet
    settings["channels"] = params.choice(channels_key, CHANNELS)
    if model in GAN_MODELS and settings["channels"] != "rgb":
        raise ParamError(f"{params.path}: {channels_key} = {settings['channels']!r}: {model} trains on RGB (its discriminator judges colour images)")
    settings["rgb_permutation"] = params.choice(f"{model}.rgb_permutation", (True, False))
    if settings["rgb_permutation"] and settings["channels"] != "rgb":
        raise ParamError(f"{params.path}: {model}.rgb_permutation = true: only for RGB training ({channels_key} is {settings['channels']!r})")
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
    from srbench.models import load_model

    network, meta = load_model(init, device)
    if meta["name"] != "srresnet" or meta["scale"] != scale or meta["channels"] != "rgb":
        raise ParamError(f"--init {init}: holds {meta['name']} x{meta['scale']} ({meta['channels']}), expected srresnet x{scale} (rgb)")
    return network.train(), meta["arch"]


def _training_wrapper(settings: dict[str, Any], device: torch.device, world: World) -> Callable[[torch.nn.Module], torch.nn.Module]:
    """How the training step runs a network: across the processes of ``world`` (DDP), then
    through torch.compile when ``train.compile`` asks for it."""

    import torch

    def wrap(network: torch.nn.Module) -> torch.nn.Module:
        network = world.wrap(network, device)
        return torch.compile(network) if settings["compile"] else network

    return wrap


def memory_format(settings: dict[str, Any]) -> torch.memory_format:
    """``train.channels_last``: NHWC activations and weights (faster convolutions on tensor cores and oneDNN)."""
    import torch

    return torch.channels_last if settings["channels_last"] else torch.contiguous_format


def build_objective(
    model: str, network: torch.nn.Module, settings: dict[str, Any], device: torch.device, world: World | None = None
) -> Objective:
    """What ``model`` is trained to minimise with its recipe's optimiser: the pixel loss, or the
    adversarial game with its content loss, pixel MSE or VGG features (built here, so a missing
    VGG file fails before any training). Its networks are put in the recipe's memory format and
    trained through DDP (over ``world``, default: this process alone) and torch.compile as the
    settings say."""
    import torch

    from srbench.distributed import World
    from srbench.losses import VGGContentLoss
    from srbench.models import Discriminator, SRGANStudyDiscriminator
    from srbench.train import AdversarialObjective, OptimizerConfig, PixelObjective, Precision

    world = World() if world is None else world
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


def build_sampler(data: Path, settings: dict[str, Any], device: torch.device, world: World | None = None) -> PatchSampler:
    """The recipe's batches, cut on ``device`` in its memory format; this rank's rows of each
    (``world``, default: this process alone, takes them all)."""
    from srbench.distributed import World
    from srbench.sampling import PatchSampler

    world = World() if world is None else world
    return PatchSampler(
        data, settings["batch_size"], settings["patch_size"], settings["seed"],
        device=device, shard=(world.rank, world.size), memory_format=memory_format(settings),
        channels=settings["channels"], rgb_permutation=settings["rgb_permutation"],
    )


#: Settings that change how a run goes but not what it learns: a checkpoint resumes across them
#: (a resumed run on another device or number of processes is another machine's arithmetic, as
#: the README's reproducibility section says, not another recipe).
RUN_ONLY_SETTINGS = ("device", "nproc", "deterministic", "channels_last", "compile", "log_every", "validations", "checkpoint_every")
#: The code that shapes a trained model (the train stages' code deps in dvc.yaml).
TRAINING_CODE = ("train.py", "sampling.py", "distributed.py", "losses.py", "degradation.py", "colour.py", "models")
LOCK_HELD = "SRBENCH_TRAIN_LOCK_HELD"  # set by the launcher for the torchrun processes it starts


def fingerprint(model: str, settings: dict[str, Any], scale: int, data: Path, init: Path | None) -> dict[str, Any]:
    """What shapes a training run, kept in its checkpoints so that ``--resume`` continues only
    the same run: the model, its learning settings, the prepared data (meta.json, validation
    pairs, and sampled blocks of the patch stores), the training code, PyTorch's version and the
    ``--init`` weights (which also fix srgan's architecture)."""
    import torch

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


def _lock_name(outputs: Outputs) -> str:
    return f"train-{outputs.model}-seed{outputs.seed}"


def _lock(outputs: Outputs, world: World) -> contextlib.AbstractContextManager:
    """One training of a model and seed at a time in this workspace (taken by rank 0, or by the
    launcher of the torchrun processes)."""
    name = _lock_name(outputs)
    if not world.main or os.environ.get(LOCK_HELD) == name:
        return contextlib.nullcontext()
    return workspace_lock(name, f"srbench train {outputs.model} --seed {outputs.seed}")


def _launch_torchrun(outputs: Outputs, nproc: int, arguments: list[str]) -> None:
    """Run this training under torchrun with ``nproc`` processes on this machine, holding the
    model's lock for them; exit as it exits. SIGTERM and Ctrl-C are passed on, so the processes
    end their MLflow run and exit."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "pipeline.cli", *arguments]
    logger.info("train.nproc = %d: %s", nproc, " ".join(command))
    name = _lock_name(outputs)
    with workspace_lock(name, f"srbench train {outputs.model} --seed {outputs.seed}") as lock:
        # torchrun inherits the locked file, so the lock holds as long as it runs, even if this
        # launcher is killed
        process = subprocess.Popen(command, env={**os.environ, LOCK_HELD: name}, pass_fds=(lock.fileno(),))
        returncode = wait_passing_signals(process, grace=60)
    raise typer.Exit(returncode)


def train(
    model: str = typer.Argument(..., help=f"One of: {', '.join(MODEL_NAMES)}."),
    seed: int = typer.Option(None, min=0, max=2**32 - 1, help="The seed (batches, initial weights) [default: the first of train.seeds]."),
    params_file: Path = PARAMS_OPTION,
    data: Path = typer.Option(Path("data/prepared"), help="Output of srbench prepare."),
    init: Path = typer.Option(None, "--init", help="srgan only: the trained SRResNet weights it starts from."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from checkpoints/seedN/MODEL.pt, if it was made by this same run (params, data, code)."
    ),
) -> None:
    """Train MODEL with seed N; weights to models/seedN/MODEL.pt with its card models/seedN/MODEL.json,
    summary and cost to metrics/train/seedN/, curves to plots/train/seedN/, and a new version of
    srbench-MODEL in MLflow's Model Registry. With train.nproc > 1 (or under torchrun) the processes
    train it data-parallel; rank 0 writes. One training of a model and seed at a time in a
    workspace; a finished run removes its checkpoint."""
    started = time.perf_counter()
    params = Params(params_file)
    settings = read_settings(params, model, seed=seed)
    outputs = Outputs(model, settings["seed"])
    if (model == "srgan") != (init is not None):
        raise ParamError(f"srgan starts from a trained SRResNet: pass --init {Outputs('srresnet', settings['seed']).weights} (and only for srgan)")
    import torch

    from srbench.data import read_meta
    from srbench.distributed import World
    from srbench.inference import pick_device

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
    # every place it writes, checked before it starts: a read-only folder or a full disk is found before the training
    ensure_writable(*(path.parent for path in (outputs.weights, outputs.training_summary, outputs.curves, outputs.checkpoint)), *output_places())
    run_fingerprint = fingerprint(model, settings, scale, data, init)
    checkpoint = outputs.checkpoint
    if resume and world.main and checkpoint.is_file():
        from srbench.train import read_checkpoint

        read_checkpoint(checkpoint, run_fingerprint)  # another run's checkpoint: one line, before anything starts
    if settings["nproc"] > 1 and "WORLD_SIZE" not in os.environ:  # not yet under torchrun
        arguments = ["train", model, "--seed", str(outputs.seed), "--params", str(params_file), "--data", str(data)]
        arguments += (["--init", str(init)] if init else []) + (["--resume"] if resume else [])
        _launch_torchrun(outputs, settings["nproc"], arguments)
    device = world.device(device)
    with _lock(outputs, world):
        world.start(device)
        try:
            _train(outputs, settings, scale, data, init, resume, device, world, run_fingerprint, started)
        finally:
            world.stop()


def _train(
    outputs: Outputs,
    settings: dict[str, Any],
    scale: int,
    data: Path,
    init: Path | None,
    resume: bool,
    device: torch.device,
    world: World,
    run_fingerprint: dict[str, Any],
    started: float,
) -> None:
    """One process's training; rank 0 also logs the MLflow run and writes every output.
    ``started``: the command's start (``time.perf_counter()``), from which its wall time counts."""
    import torch

    model = outputs.model
    from srbench.data import load_pairs
    from srbench.inference import describe_machine
    from srbench.models import build_model, count_parameters
    from srbench.train import Schedule, fit, use_deterministic_kernels

    use_deterministic_kernels(settings["deterministic"])
    torch.manual_seed(settings["seed"])
    if init is None:
        network = build_model(model, scale, settings["arch"], settings["channels"]).to(device)
    else:
        network, settings["arch"] = _srresnet_to_start_from(init, scale, device)
    sampler = build_sampler(data, settings, device, world)
    valid_pairs = load_pairs(data / "valid")
    objective = build_objective(model, network, settings, device, world)
    schedule = Schedule(
        steps=settings["steps"],
        log_every=settings["log_every"],
        validate_every=math.ceil(settings["steps"] / settings["validations"]),
        checkpoint_every=settings["checkpoint_every"],
    )
    checkpoint = outputs.checkpoint
    if not world.main:
        fit(objective, sampler, schedule, device, valid_pairs, checkpoint, resume, world=world, fingerprint=run_fingerprint)
        return

    machine = describe_machine(device)
    card = {
        "model": model,
        "seed": settings["seed"],
        "scale": scale,
        "arch": settings["arch"],
        "channels": settings["channels"],
        "rgb_permutation": settings["rgb_permutation"],
        "device": device.type,
        "device_name": machine["gpu"] or machine["cpu"],
        "precision": precision_that_runs(device, settings["precision"]),
        "threads": torch.get_num_threads(),
        "world_size": world.size,
        "torch": str(torch.__version__),
        "steps": settings["steps"],
        "batch_size": settings["batch_size"],
    }
    if model in GAN_MODELS:
        card["content_loss"] = describe_content_loss(settings)
    logged = {key: value for key, value in settings.items() if key not in ("device", "precision")}
    logged |= {key: card[key] for key in ("device", "device_name", "precision", "world_size")}
    logged |= {"device_requested": settings["device"], "precision_requested": settings["precision"]}
    logged |= {"scale": scale, "n_parameters": count_parameters(network), "init": str(init or "")} | machine
    with mlflow_run("train", logged, model=model, seed=outputs.seed) as mlflow:
        if model in GAN_MODELS:
            mlflow.set_tag("content_loss", card["content_loss"])
        data_digest = hashlib.sha256(run_fingerprint["data"].encode()).hexdigest()[:16]
        log_dataset(mlflow, data, data_digest, "training")

        def log_metrics(step: int, metrics: dict[str, float]) -> None:
            mlflow.log_metrics(metrics, step=step)

        history = fit(objective, sampler, schedule, device, valid_pairs, checkpoint, resume, log_metrics, world=world, fingerprint=run_fingerprint)
        training_seconds = history[-1]["seconds"]  # the training loop's time, validation excluded, across resumes

        last_validation = next(row for row in reversed(history) if "val_psnr_y" in row)  # fit validates its last step
        final = {key.removeprefix("val_"): value for key, value in last_validation.items() if key.startswith("val_")}
        cost = training_cost(settings, training_seconds, time.perf_counter() - started, device, world.size)
        summary = {
            "n_parameters": count_parameters(network),
            "seed": settings["seed"],
            "steps": settings["steps"],
            "world_size": world.size,
            **cost,
            **{f"val_{key}": value for key, value in final.items()},
        }
        mlflow.log_metrics({**cost, **final})
        curves = _history_csv(with_images_seen(history, settings["batch_size"]))
        _write_outputs(mlflow, outputs, network, card, summary, curves, valid_pairs[:SAMPLE_IMAGES], device)
        checkpoint.unlink(missing_ok=True)  # the run is done: nothing left for a later --resume to mistake for it
        with contextlib.suppress(OSError):  # and its seed's folder, once empty
            checkpoint.parent.rmdir()
        logger.info("%s: %d steps in %.1fs, validation psnr_y %.3f dB", model, summary["steps"], training_seconds, summary["val_psnr_y"])


def training_cost(settings: dict[str, Any], training_seconds: float, wall_seconds: float, device: torch.device, world_size: int) -> dict[str, float]:
    """What a training cost: ``training_seconds`` (the training loop, validation excluded, across
    resumes), ``wall_seconds`` (this command from its start, with model building, validation and
    writing), images seen (steps x batch), steps per second of the loop, this process's peak
    resident host memory and, on CUDA, its peak GPU memory (PyTorch's allocations) and the
    GPU-hours of all processes (``world_size`` x wall time)."""
    import resource

    import torch

    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    cost = {
        "training_seconds": round(training_seconds, 2),
        "wall_seconds": round(wall_seconds, 2),
        "images_seen": settings["steps"] * settings["batch_size"],
        "steps_per_second": round(settings["steps"] / training_seconds, 3) if training_seconds > 0 else 0.0,
        "peak_host_memory_mb": round(peak_rss / (2**20 if sys.platform == "darwin" else 2**10), 1),
    }
    if device.type == "cuda":
        cost["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        cost["gpu_hours"] = round(world_size * wall_seconds / 3600, 4)
    return cost


def precision_that_runs(device: torch.device, requested: str) -> str:
    """The arithmetic a training on ``device`` asked for ``requested`` really uses: bf16 and fp16
    (mixed precision) run on CUDA only, elsewhere the run is fp32."""
    import torch

    from srbench.train import Precision

    dtype = Precision(device, requested).dtype
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


def with_images_seen(history: list[dict], batch_size: int) -> list[dict]:
    """``history`` with ``images`` after ``seconds`` in each row: the training crops seen by that
    step, ``step`` x ``batch_size`` (a step's batch across all processes together)."""
    return [{"step": row["step"], "seconds": row["seconds"], "images": row["step"] * batch_size} | row for row in history]


#: The tensors a registered model takes and gives: float32 RGB images in [0, 1], N x 3 x H x W
#: of any size (the output ``scale`` times the input's).
IMAGE_BATCH = (-1, 3, -1, -1)


def _register(mlflow: Any, model: str, network: torch.nn.Module) -> None:
    """Log ``network`` as the MLflow model ``model`` and register it as a new version of
    ``srbench-MODEL``, with its signature, a small input example, its requirements and srbench's
    code (so that it loads where srbench is not installed)."""
    import numpy as np
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    images = Schema([TensorSpec(np.dtype(np.float32), IMAGE_BATCH)])
    example = np.linspace(0, 1, 3 * 8 * 8, dtype=np.float32).reshape(1, 3, 8, 8)
    mlflow.pytorch.log_model(
        network.cpu().eval(), name=model, registered_model_name=f"srbench-{model}", serialization_format="pickle",
        signature=ModelSignature(inputs=images, outputs=images), input_example=example,
        code_paths=[str(Path(srbench.__file__).parent)],
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"],
    )


def _write_outputs(
    mlflow: Any,
    outputs: Outputs,
    network: torch.nn.Module,
    card: dict[str, Any],
    summary: dict[str, Any],
    curves: str,
    samples: list[ImagePair],
    device: torch.device,
) -> None:
    """The weights, the model card, the training summary and the curves of ``outputs``, each written beside its place and all renamed together once every one
    is written and the MLflow run holds the samples, curves and registered model; SIGTERM and
    Ctrl-C wait until the renames are done."""
    from srbench.inference import model_upscaler
    from srbench.models import save_model

    model = outputs.model
    places = (outputs.weights, outputs.card, outputs.training_summary, outputs.curves)
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    try:
        with contextlib.ExitStack() as stack:
            weights, model_card, metrics, plots = (stack.enter_context(atomic_path(place)) for place in places)
            upscale = model_upscaler(network, device)
            for pair in samples:
                mlflow.log_image(upscale(pair.lr), artifact_file=f"samples/{pair.name}_sr.png")
            mlflow.log_text(curves, f"{model}.csv")
            with naming(places[0]):
                save_model(weights, network, model, card["scale"], card["arch"], card["channels"])
            with naming(places[1]):
                write_json(model_card, card)
            with naming(places[2]):
                write_json(metrics, summary)
            with naming(places[3]):
                write_text(plots, curves)
            _register(mlflow, model, network)
            signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # leaving the block renames all four
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
