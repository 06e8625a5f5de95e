"""A model's training recipe, read once from params.yaml into typed, frozen values, and what is
built from it: the objective (loss and optimiser), the batch sampler and the run's fingerprint.

:class:`Recipe` is what shapes the weights (the model's section, the seed, the budget, the
precision); :class:`RunSettings` is how a run goes (device, processes, logging, validation,
checkpoints), across which a checkpoint resumes. `srbench train` and `srbench check`, the
benchmarks and the tests all take their recipes from here."""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import srbench
from pipeline.layout import read_seeds
from pipeline.params import ParamError, Params
from pipeline.process import logger
from srbench.errors import SrbenchError
from srbench.files import file_digest, tree_digest
from srbench.names import model_names

if TYPE_CHECKING:  # torch and the modules importing it load when a recipe is built, not for `srbench --help`
    import torch

    from srbench.distributed import World
    from srbench.recipe_check import RecipeCheck
    from srbench.sampling import PatchSampler
    from srbench.train import Objective, OptimizerConfig

#: The code that shapes a trained model (the train stages' code deps in dvc.yaml), under src/srbench.
TRAINING_CODE = ("train.py", "sampling.py", "distributed.py", "losses.py", "degradation.py", "colour.py", "models")


@dataclass(frozen=True)
class Recipe:
    """What a training of ``model`` learns from: its params section, ``train.precision``, the
    seed and the budget (``steps`` and the optimiser's step counts already scaled by it).
    ``arch`` is None for a model that keeps the architecture of the one it starts from (srgan,
    from srresnet: ``ModelSpec.starts_from``); ``loss_scale`` is the pixel-loss models', the
    content loss and adversarial weight the adversarial ones'."""

    model: str
    seed: int
    budget: float
    steps: int
    batch_size: int
    patch_size: int
    precision: str
    channels: str
    rgb_permutation: bool
    optimizer: OptimizerConfig
    arch: dict[str, Any] | None = None
    loss_scale: float | None = None
    content_loss: str | None = None
    adversarial_weight: float | None = None
    vgg_weights: str | None = None
    vgg_rescale: float | None = None

    def describe_content_loss(self) -> str:
        """A GAN's content loss in words: ``mse``, or e.g. ``vgg54 (imagenet weights)``."""
        return "mse" if self.content_loss == "mse" else f"{self.content_loss} ({self.vgg_weights} weights)"

    def as_params(self) -> dict[str, Any]:
        """The recipe's values as MLflow params: nested values kept as mappings, absent ones left out."""
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}


@dataclass(frozen=True)
class RunSettings:
    """How a training runs but not what it learns (``train.*``): a checkpoint resumes across them
    (a resumed run on another device or number of processes is another machine's arithmetic, as
    docs/reproducibility.md says, not another recipe)."""

    device: str
    deterministic: bool
    channels_last: bool
    compile: bool
    nproc: int
    log_every: int
    validations: int
    checkpoint_every: int


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


def read_recipe(params: Params, model: str, budget: float | None = None, seed: int | None = None) -> Recipe:
    """``model``'s recipe, every param it uses checked before any work starts; ``budget``
    replaces ``train.budget`` (the fraction of the recipe's steps and schedule to run), ``seed``
    the first of ``train.seeds`` (which are checked either way)."""
    if model not in model_names():  # before torch is imported: a usage error answers at once
        raise ParamError(f"unknown model {model!r}: choose one of {', '.join(model_names())}")
    from srbench.models import CHANNELS, check_arch, model_spec
    from srbench.train import PRECISIONS

    try:
        spec = model_spec(model)
    except SrbenchError as error:
        raise ParamError(str(error)) from error
    budget = params.positive_float("train.budget") if budget is None else budget
    seeds = read_seeds(params)
    steps = _scaled(params.integer(f"{model}.steps", minimum=1), budget)
    channels_key = f"{spec.starts_from or model}.channels"  # srgan goes on in the channels of the SRResNet it starts from
    channels = params.choice(channels_key, CHANNELS)
    if problem := spec.channels_problem(channels):
        raise ParamError(f"{params.path}: {channels_key} = {channels!r}: {problem}")
    rgb_permutation = params.choice(f"{model}.rgb_permutation", (True, False))
    if rgb_permutation and channels != "rgb":
        raise ParamError(f"{params.path}: {model}.rgb_permutation = true: only for RGB training ({channels_key} is {channels!r})")
    values: dict[str, Any] = {}
    if not spec.adversarial:
        values["loss_scale"] = params.positive_float(f"{model}.loss_scale")
    if spec.starts_from is None:  # else the architecture of the model it starts from (its --init weights)
        values["arch"] = params.section(f"{model}.arch")
        try:
            check_arch(model, values["arch"])
        except SrbenchError as error:
            raise ParamError(f"{params.path}: {error}") from error
    if spec.adversarial:
        values["content_loss"] = params.choice(f"{model}.content_loss", spec.content_losses)
        values["adversarial_weight"] = params.positive_float(f"{model}.adversarial_weight")
        if values["content_loss"] != "mse":
            values["vgg_weights"] = params.choice(f"{model}.vgg_weights", ("imagenet", "random"))
            values["vgg_rescale"] = params.positive_float(f"{model}.vgg_rescale")
    return Recipe(
        model=model,
        seed=seeds[0] if seed is None else seed,
        budget=budget,
        steps=steps,
        batch_size=params.integer(f"{model}.batch_size", minimum=1),
        patch_size=params.integer(f"{model}.patch_size", minimum=4),
        precision=params.choice("train.precision", PRECISIONS),
        channels=channels,
        rgb_permutation=rgb_permutation,
        optimizer=_optimizer(params, f"{model}.optimizer", budget, steps),
        **values,
    )


def read_run_settings(params: Params) -> RunSettings:
    """``train.*``'s settings of how a run goes, checked."""
    return RunSettings(
        device=params.string("train.device"),
        deterministic=params.choice("train.deterministic", (True, False)),
        channels_last=params.choice("train.channels_last", (True, False)),
        compile=params.choice("train.compile", (True, False)),
        nproc=params.integer("train.nproc", minimum=1),
        log_every=params.integer("train.log_every", minimum=1),
        validations=params.integer("train.validations", minimum=1),
        checkpoint_every=params.integer("train.checkpoint_every", minimum=1),
    )


def memory_format(run: RunSettings) -> torch.memory_format:
    """``train.channels_last``: NHWC activations and weights (faster convolutions on tensor cores and oneDNN)."""
    import torch

    return torch.channels_last if run.channels_last else torch.contiguous_format


def build_objective(recipe: Recipe, run: RunSettings, network: torch.nn.Module, device: torch.device, world: World | None = None) -> Objective:
    """What ``recipe.model`` is trained to minimise with its recipe's optimiser: the pixel loss,
    or the adversarial game with its content loss, pixel MSE or VGG features (built here, so a
    missing VGG file fails before any training). Its networks are put in the run's memory format
    and trained through DDP (over ``world``, default: this process alone) and, with
    ``train.compile``, torch.compile."""
    import torch

    from srbench.distributed import World
    from srbench.losses import VGGContentLoss
    from srbench.models import model_spec
    from srbench.train import AdversarialObjective, PixelObjective, Precision

    world = World() if world is None else world
    precision = Precision(device, recipe.precision)
    network.to(memory_format=memory_format(run))
    spec = model_spec(recipe.model)
    if spec.discriminator is None:
        objective: Objective = PixelObjective(network, recipe.optimizer, precision, recipe.loss_scale)
    else:
        discriminator = spec.discriminator(recipe.patch_size)
        if recipe.content_loss == "mse":
            content_loss: torch.nn.Module = torch.nn.MSELoss()
        else:
            layer = recipe.content_loss.removeprefix("vgg")
            content_loss = VGGContentLoss(layer, recipe.vgg_weights, recipe.vgg_rescale, seed=recipe.seed)
        discriminator.to(device, memory_format=memory_format(run))
        objective = AdversarialObjective(network, discriminator, content_loss.to(device), recipe.optimizer, recipe.adversarial_weight, precision)

    def wrap(module: torch.nn.Module) -> torch.nn.Module:
        module = world.wrap(module, device)
        return torch.compile(module) if run.compile else module

    objective.wrap(wrap)
    return objective


def build_sampler(data: Path, recipe: Recipe, run: RunSettings, device: torch.device, world: World | None = None) -> PatchSampler:
    """The recipe's batches, cut on ``device`` in the run's memory format; this rank's rows of
    each (``world``, default: this process alone, takes them all)."""
    from srbench.distributed import World
    from srbench.sampling import PatchSampler

    world = World() if world is None else world
    return PatchSampler(
        data, recipe.batch_size, recipe.patch_size, recipe.seed,
        device=device, shard=(world.rank, world.size), memory_format=memory_format(run),
        channels=recipe.channels, rgb_permutation=recipe.rgb_permutation,
    )


def fingerprint(recipe: Recipe, scale: int, data: Path, init: Path | None) -> dict[str, Any]:
    """What shapes a training run, kept in its checkpoints so that ``--resume`` continues only
    the same run: the recipe, the prepared data (meta.json, validation pairs, and sampled blocks
    of the patch stores), the training code, PyTorch's version and the ``--init`` weights (which
    also fix srgan's architecture). A model from another package adds its network's module."""
    import inspect

    import torch

    from srbench.models import model_spec

    package = Path(srbench.__file__).parent
    code = [package / name for name in TRAINING_CODE if (package / name).is_file()]
    code += [path for name in TRAINING_CODE if (package / name).is_dir() for path in (package / name).glob("*.py")]
    stores = [data / "train_hr.npy", data / "train_lr.npy"]
    network_file = Path(inspect.getfile(model_spec(recipe.model).network)).resolve()
    return {
        "model": recipe.model,
        "scale": scale,
        "settings": dataclasses.asdict(recipe),
        "data": tree_digest([data / "meta.json", *(data / "valid").rglob("*.png")], data) + tree_digest(stores, data, sample_blocks=64)[:16],
        "code": tree_digest([*code, Path(__file__)], package.parents[1]),
        **({} if network_file.is_relative_to(package.resolve()) else {"network_code": file_digest(network_file)}),
        "torch": str(torch.__version__),  # a TorchVersion object would not load weights-only
        "init": None if init is None else file_digest(init),
    }


def fresh_training(
    params: Params, model: str, data: Path, steps: int, overrides: dict[str, Any], device: torch.device
) -> tuple[Recipe, RunSettings, Objective, PatchSampler]:
    """``model``'s recipe from scratch for ``steps`` steps, its whole schedule (warm-up, decay)
    compressed or stretched into them as ``train.budget`` would, with ``overrides`` of recipe or
    run settings by field name (None: keep); a model that starts from another (srgan) starts
    from a fresh one of that architecture. The recipe and
    run settings, the objective and the sampler (for `srbench check` and the benchmarks)."""
    import torch

    from srbench.data import read_meta
    from srbench.models import build_model, model_spec
    from srbench.train import use_deterministic_kernels

    recipe = read_recipe(params, model, budget=steps / params.integer(f"{model}.steps", minimum=1))
    run = read_run_settings(params)
    given = {key: value for key, value in overrides.items() if value is not None}
    recipe_fields = {field.name for field in dataclasses.fields(Recipe)}
    run_fields = {field.name for field in dataclasses.fields(RunSettings)}
    if unknown := sorted(set(given) - recipe_fields - run_fields):
        raise ValueError(f"fresh_training: no setting named {unknown[0]!r}")
    recipe = dataclasses.replace(recipe, **{key: value for key, value in given.items() if key in recipe_fields})
    run = dataclasses.replace(run, **{key: value for key, value in given.items() if key in run_fields})
    use_deterministic_kernels(run.deterministic)
    torch.manual_seed(recipe.seed)
    starts_from = model_spec(model).starts_from
    arch = recipe.arch if starts_from is None else params.section(f"{starts_from}.arch")
    network = build_model(model, read_meta(data).scale, arch, recipe.channels).to(device)
    return recipe, run, build_objective(recipe, run, network, device), build_sampler(data, recipe, run, device)


def check_recipe(
    params: Params, model: str, data: Path, steps: int, overrides: dict, above_bicubic: bool, bicubic_psnr: float, device: torch.device
) -> RecipeCheck:
    """``steps`` steps of ``model``'s recipe (:func:`fresh_training`) with the batch, crop, VGG and compile ``overrides``: whether it stays finite, falls, never spikes and, where ``above_bicubic``, ends above ``bicubic_psnr`` (`srbench check`, benchmarks/gpu_acceptance.py)."""
    from srbench.data import load_pairs
    from srbench.recipe_check import WINDOW_CROPS, RecipeCheck, loss_summary
    from srbench.train import Schedule, TrainingDiverged, fit

    recipe, _, objective, sampler = fresh_training(params, model, data, steps, overrides, device)
    log_every = max(1, steps // 30, min(math.ceil(WINDOW_CROPS / recipe.batch_size), steps // 10))  # at least 10 windows
    schedule = Schedule(steps=steps, log_every=log_every, validate_every=steps, checkpoint_every=steps)
    losses: list[float] = []
    validation: dict[str, float] = {}

    def collect(step: int, metrics: dict[str, float]) -> None:
        if "loss" in metrics and step % log_every == 0:  # whole windows only: a short last one is noisier
            losses.append(metrics["loss"])
        validation.update(metrics)

    finite, seconds = True, math.nan
    with tempfile.TemporaryDirectory() as scratch:
        try:
            history = fit(objective, sampler, schedule, device, load_pairs(data / "valid"), Path(scratch) / "check.pt", on_metrics=collect)
            seconds = history[-1]["seconds"]
        except TrainingDiverged as error:
            logger.warning("%s: %s", model, error)
            finite = False
    first, last, spike = loss_summary(losses) if losses else (math.nan, math.nan, 1.0)
    return RecipeCheck(
        model=model,
        steps=steps,
        batch_size=recipe.batch_size,
        patch_size=recipe.patch_size,
        first_loss=first,
        last_loss=last if finite else math.inf,
        finite=finite,
        worst_spike=spike,
        val_psnr_y=validation.get("val_psnr_y") if finite else None,
        bicubic_psnr_y=bicubic_psnr,
        steps_per_second=steps / seconds if finite else math.nan,
        above_bicubic_required=above_bicubic,
    )
