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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from pipeline.devices import claim_device, device_pool
from pipeline.layout import Outputs, read_seeds
from pipeline.outputs import ensure_writable, write_json
from pipeline.params import PARAMS_OPTION, ParamError, Params, matching_profile
from pipeline.process import LOCK_DIR, data_lock, logger, sigterm_deferred, wait_passing_signals, workspace_lock
from pipeline.recipe import Recipe, RunSettings, build_objective, build_sampler, fingerprint, read_recipe, read_run_settings
from pipeline.tracking import WEIGHTS_TAG, log_dataset, mlflow_run, output_places, registered_name, workspace
from srbench.files import atomic_path, file_digest, naming, write_text
from srbench.names import model_names

if TYPE_CHECKING:  # torch and the modules importing it load inside the commands: `srbench --help` stays fast
    import torch

    from srbench.data import ImagePair
    from srbench.distributed import World

SAMPLE_IMAGES = 2  # SR validation images attached to each MLflow training run


def _history_csv(history: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in history for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


def _starting_point(init: Path, recipe: Recipe, scale: int, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Where a model that starts from another's weights starts (srgan: the trained SRResNet):
    the network in ``init`` and its architecture, checked against the recipe's model, scale and channels."""
    from srbench.models import load_model, model_spec

    expected = model_spec(recipe.model).starts_from
    network, meta = load_model(init, device)
    if meta["name"] != expected or meta["scale"] != scale or meta["channels"] != recipe.channels:
        raise ParamError(f"--init {init}: holds {meta['name']} x{meta['scale']} ({meta['channels']}), expected {expected} x{scale} ({recipe.channels})")
    return network.train(), meta["arch"]


LOCK_HELD = "SRBENCH_TRAIN_LOCK_HELD"  # set by the launcher for the torchrun processes it starts


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
    model: str = typer.Argument(..., help=f"One of: {', '.join(model_names())}."),
    seed: int = typer.Option(None, min=0, max=2**32 - 1, help="The seed (batches, initial weights) [default: the first of train.seeds]."),
    params_file: Path = PARAMS_OPTION,
    data: Path = typer.Option(Path("data/prepared"), help="Output of srbench prepare."),
    init: Path = typer.Option(None, "--init", help="The trained weights a model that starts from another's begins with (srgan: srresnet's)."),
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
    recipe, run = read_recipe(params, model, seed=seed), read_run_settings(params)
    outputs = Outputs(model, recipe.seed)
    import torch

    from srbench.models import model_spec, training_memory

    spec = model_spec(model)
    if spec.starts_from is not None and init is None:
        raise ParamError(f"{model} starts from a trained {spec.starts_from}: pass --init {Outputs(spec.starts_from, recipe.seed).weights}")
    if spec.starts_from is None and init is not None:
        raise ParamError(f"--init: {model} trains from scratch (--init is only for a model that starts from another's weights, such as srgan)")

    from srbench.data import open_patch_stores, read_meta
    from srbench.distributed import World
    from srbench.inference import available_memory, pick_device

    world = World.from_environment()
    processes = max(world.size, run.nproc)
    if recipe.batch_size % processes:
        raise ParamError(f"{params.path}: {model}.batch_size = {recipe.batch_size}: must be a multiple of the {processes} processes")
    meta = read_meta(data)
    open_patch_stores(data, meta)  # a damaged or mismatched store: one line, before any run starts
    scale = meta.scale
    device = pick_device(run.device)
    if device.type == "cuda" and run.nproc > torch.cuda.device_count():
        raise ParamError(f"{params.path}: train.nproc = {run.nproc}: this machine has {torch.cuda.device_count()} GPU(s)")
    arch = recipe.arch if spec.starts_from is None else params.section(f"{spec.starts_from}.arch")
    crops = recipe.batch_size // processes  # each process's share of the batch
    needed = training_memory(model, scale, arch, recipe.channels, crops, recipe.patch_size)
    available = available_memory(device)
    if available is not None and needed > available:  # before allocating: a step that cannot fit would swap or be killed
        raise ParamError(
            f"{params.path}: {model}: a training step needs about {needed / 1e9:.1f} GB (weights, optimiser and the activations of "
            f"{crops} crops of {recipe.patch_size} px), more than the {available / 1e9:.1f} GB free on {device}; "
            f"lower {model}.batch_size, patch_size or arch"
        )
    if init is not None and not init.is_file():
        raise ParamError(f"--init {init}: file not found (train {spec.starts_from} first)")
    # every place it writes, checked before it starts: a read-only folder or a full disk is found before the training
    ensure_writable(*(path.parent for path in (outputs.weights, outputs.training_summary, outputs.curves, outputs.checkpoint)), *output_places())
    run_fingerprint = fingerprint(recipe, scale, data, init)
    profile = matching_profile(params.data)
    alias = profile and (profile if outputs.seed == read_seeds(params)[0] else f"{profile}-seed{outputs.seed}")
    checkpoint = outputs.checkpoint
    if resume and world.main and checkpoint.is_file():
        from srbench.train import read_checkpoint

        read_checkpoint(checkpoint, run_fingerprint, steps=recipe.steps)  # another run's checkpoint: one line, before anything starts
    if run.nproc > 1 and "WORLD_SIZE" not in os.environ:  # not yet under torchrun
        arguments = ["train", model, "--seed", str(outputs.seed), "--params", str(params_file), "--data", str(data)]
        arguments += (["--init", str(init)] if init else []) + (["--resume"] if resume else [])
        _launch_torchrun(outputs, run.nproc, arguments)
    pool = device_pool(run.device, run.nproc, "WORLD_SIZE" in os.environ, torch.cuda.device_count() if device.type == "cuda" else 0)
    claim = claim_device(pool, workspace() / LOCK_DIR) if pool else contextlib.nullcontext(None)
    with _lock(outputs, world), data_lock(data), claim as claimed:
        if claimed:
            logger.info("training on %s, the first free GPU of %d (pipeline/devices.py)", claimed, len(pool))
        device = world.device(torch.device(claimed) if claimed else device)
        world.start(device)
        try:
            _train(outputs, recipe, run, scale, data, init, resume, device, world, run_fingerprint, started, profile, alias)
        finally:
            world.stop()


def _train(
    outputs: Outputs,
    recipe: Recipe,
    run: RunSettings,
    scale: int,
    data: Path,
    init: Path | None,
    resume: bool,
    device: torch.device,
    world: World,
    run_fingerprint: dict[str, Any],
    started: float,
    profile: str | None,
    alias: str | None,
) -> None:
    """One process's training; rank 0 also logs the MLflow run and writes every output.
    ``started``: the command's start (``time.perf_counter()``), from which its wall time counts;
    ``profile``: the profile the params are (None: edited) and ``alias`` the registry alias the
    version gets (the profile's name, with ``-seedN`` for any but the first seed)."""
    import torch

    model = outputs.model
    from srbench.data import load_pairs
    from srbench.inference import describe_machine
    from srbench.models import build_model, count_parameters
    from srbench.train import Schedule, fit, use_deterministic_kernels

    use_deterministic_kernels(run.deterministic)
    torch.manual_seed(recipe.seed)
    if init is None:
        network = build_model(model, scale, recipe.arch, recipe.channels).to(device)
    else:
        network, arch = _starting_point(init, recipe, scale, device)
        recipe = dataclasses.replace(recipe, arch=arch)
    sampler = build_sampler(data, recipe, run, device, world)
    valid_pairs = load_pairs(data / "valid")
    objective = build_objective(recipe, run, network, device, world)
    schedule = Schedule(
        steps=recipe.steps,
        log_every=run.log_every,
        validate_every=math.ceil(recipe.steps / run.validations),
        checkpoint_every=run.checkpoint_every,
    )
    checkpoint = outputs.checkpoint
    if not world.main:
        fit(objective, sampler, schedule, device, valid_pairs, checkpoint, resume, world=world, fingerprint=run_fingerprint)
        return

    machine = describe_machine(device)
    card = {
        "model": model,
        "seed": recipe.seed,
        "scale": scale,
        "arch": recipe.arch,
        "channels": recipe.channels,
        "rgb_permutation": recipe.rgb_permutation,
        "device": device.type,
        "device_name": machine["gpu"] or machine["cpu"],
        "precision": precision_that_runs(device, recipe.precision),
        "threads": torch.get_num_threads(),
        "world_size": world.size,
        "torch": str(torch.__version__),
        "steps": recipe.steps,
        "batch_size": recipe.batch_size,
    }
    if recipe.content_loss is not None:
        card["content_loss"] = recipe.describe_content_loss()
    logged = {key: value for key, value in (recipe.as_params() | dataclasses.asdict(run)).items() if key not in ("device", "precision")}
    logged |= {key: card[key] for key in ("device", "device_name", "precision", "world_size")}
    logged |= {"device_requested": run.device, "precision_requested": recipe.precision}
    logged |= {"scale": scale, "n_parameters": count_parameters(network), "init": str(init or "")} | machine
    with mlflow_run("train", logged, model=model, seed=outputs.seed) as mlflow:
        if "content_loss" in card:
            mlflow.set_tag("content_loss", card["content_loss"])
        data_digest = hashlib.sha256(run_fingerprint["data"].encode()).hexdigest()[:16]
        log_dataset(mlflow, data, data_digest, "training")
        validation = log_dataset(mlflow, data / "valid", data_digest, "validation")  # the data's fingerprint covers valid/

        def log_metrics(step: int, metrics: dict[str, float]) -> None:
            mlflow.log_metrics(metrics, step=step)

        history = fit(objective, sampler, schedule, device, valid_pairs, checkpoint, resume, log_metrics, world=world, fingerprint=run_fingerprint)
        training_seconds = history[-1]["seconds"]  # the training loop's time, validation excluded, across resumes

        last_validation = next(row for row in reversed(history) if "val_psnr_y" in row)  # fit validates its last step
        final = {key.removeprefix("val_"): value for key, value in last_validation.items() if key.startswith("val_")}
        cost = training_cost(recipe, training_seconds, time.perf_counter() - started, device, world.size)
        summary = {
            "n_parameters": count_parameters(network),
            "seed": recipe.seed,
            "steps": recipe.steps,
            "world_size": world.size,
            **cost,
            **{f"val_{key}": value for key, value in final.items()},
        }
        mlflow.log_metrics(cost)  # the registered version gets these too (logged at its step, 0), and `final` by _register
        curves = _history_csv(with_images_seen(history, recipe.batch_size))
        version = VersionNotes(
            description=_describe_version(recipe, scale, data, data_digest, final),
            tags={"profile": profile or "none (params edited)", "scale": str(scale), "seed": str(recipe.seed)},
            alias=alias,
            scores=final,
            scored_on=validation,
        )
        _write_outputs(mlflow, outputs, network, card, summary, curves, valid_pairs[:SAMPLE_IMAGES], device, version)
        checkpoint.unlink(missing_ok=True)  # the run is done: nothing left for a later --resume to mistake for it
        with contextlib.suppress(OSError):  # and its seed's folder, once empty
            checkpoint.parent.rmdir()
        logger.info("%s: %d steps in %.1fs, validation psnr_y %.3f dB", model, summary["steps"], training_seconds, summary["val_psnr_y"])


def training_cost(recipe: Recipe, training_seconds: float, wall_seconds: float, device: torch.device, world_size: int) -> dict[str, float]:
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
        "images_seen": recipe.steps * recipe.batch_size,
        "steps_per_second": round(recipe.steps / training_seconds, 3) if training_seconds > 0 else 0.0,
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


@dataclasses.dataclass(frozen=True)
class VersionNotes:
    """What a registry version says of itself beside the run's own tags: a description (recipe,
    data, headline metric), tags and, for a training with a profile's params, an alias; and the
    final validation ``scores``, logged to the run and the version with the data set ``scored_on``."""

    description: str
    tags: dict[str, str]
    alias: str | None
    scores: dict[str, float]
    scored_on: Any


CHANNEL_WORDS = {"y": "luma (Y)", "rgb": "RGB"}


def _describe_version(recipe: Recipe, scale: int, data: Path, data_digest: str, final: dict[str, float]) -> str:
    """The registry version's description: the paper, the recipe, the data and the validation Y-PSNR/SSIM."""
    from srbench.models import model_spec

    optimizer = recipe.optimizer
    return (
        f"{recipe.model} x{scale} ({model_spec(recipe.model).paper}), trained by srbench: {recipe.steps} steps of "
        f"{recipe.batch_size} crops of {recipe.patch_size} px on {CHANNEL_WORDS[recipe.channels]}, {optimizer.name} lr {optimizer.lr:g} "
        f"({optimizer.schedule or 'constant'}), seed {recipe.seed}. Data: {data} (digest {data_digest}). "
        f"Validation on {data / 'valid'}: Y-PSNR {final['psnr_y']:.3f} dB, Y-SSIM {final['ssim_y']:.4f}."
    )


def _register(mlflow: Any, model: str, network: torch.nn.Module, weights_digest: str, notes: VersionNotes) -> None:
    """Log ``network`` as the MLflow model ``model`` and register it as a new version of
    ``srbench-MODEL``, with its signature, a small input example, its requirements and the code
    of srbench and of the package declaring the model (so that it loads where neither is installed);
    the version gets ``notes`` and the run's git commit and DVC experiment, and both the logged model
    and the version the digest of the weights file (how an evaluation finds the version it scores)."""
    import importlib

    import numpy as np
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    from srbench.models import model_spec

    def package_code(module_name: str) -> str:
        """The folder of ``module_name``'s top-level package (or the file of a top-level module)."""
        top = importlib.import_module(module_name.split(".")[0])
        if top.__file__ is None:  # a namespace package: no __init__.py
            return str(next(iter(top.__path__)))
        path = Path(top.__file__)
        return str(path.parent if path.name == "__init__.py" else path)

    images = Schema([TensorSpec(np.dtype(np.float32), IMAGE_BATCH)])
    example = np.linspace(0, 1, 3 * 8 * 8, dtype=np.float32).reshape(1, 3, 8, 8)
    info = mlflow.pytorch.log_model(
        network.cpu().eval(), name=model, registered_model_name=registered_name(model), serialization_format="pickle",
        signature=ModelSignature(inputs=images, outputs=images), input_example=example,
        code_paths=sorted({package_code("srbench"), package_code(model_spec(model).network.__module__)}),
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"],
        tags={WEIGHTS_TAG: weights_digest},
    )
    mlflow.log_metrics(notes.scores, dataset=notes.scored_on, model_id=info.model_id)  # not before: log_model's copy drops the data set
    run_tags = mlflow.active_run().data.tags
    tags = notes.tags | {key: run_tags[key] for key in ("git_commit", "dvc_exp") if key in run_tags} | {WEIGHTS_TAG: weights_digest}
    name, version = registered_name(model), info.registered_model_version
    client = mlflow.MlflowClient()
    with sigterm_deferred():
        client.update_model_version(name, version, description=notes.description)
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        if notes.alias:
            client.set_registered_model_alias(name, notes.alias, version)
    logger.info("registered %s version %s%s", name, version, f" (alias {notes.alias!r})" if notes.alias else " (no alias: the params match no profile)")


def _write_outputs(
    mlflow: Any,
    outputs: Outputs,
    network: torch.nn.Module,
    card: dict[str, Any],
    summary: dict[str, Any],
    curves: str,
    samples: list[ImagePair],
    device: torch.device,
    notes: VersionNotes,
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
            mlflow.log_text(curves, "curves.csv")  # one name for every model: MLflow's Compare lines them up
            with naming(places[0]):
                save_model(weights, network, model, card["scale"], card["arch"], card["channels"])
            with naming(places[1]):
                write_json(model_card, card)
            with naming(places[2]):
                write_json(metrics, summary)
            with naming(places[3]):
                write_text(plots, curves)
            _register(mlflow, model, network, file_digest(weights), notes)
            signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # leaving the block renames all four
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
