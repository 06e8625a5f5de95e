"""One training loop for every model: draw a batch, take an optimisation step, log, validate,
checkpoint. What differs between models is the objective (MSE, or SRGAN's adversarial game)."""

import contextlib
import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srbench.data import ImagePair
from srbench.distributed import World
from srbench.errors import SrbenchError, error_reason
from srbench.files import save_torch
from srbench.inference import evaluate_pairs, mean_metrics, model_upscaler
from srbench.losses import adversarial_loss
from srbench.progress import format_seconds
from srbench.progress import progress as show_progress  # fit has a local `progress` (the run's state)
from srbench.sampling import PatchSampler

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")


class TrainingDiverged(SrbenchError):
    """A loss became NaN or infinite, or rose far above its starting value."""


class CheckpointMismatch(SrbenchError):
    """A checkpoint made by another run (other params, data or code) than the one resuming it."""


#: Divergence: a logged loss (the mean since the last log step) above this multiple of the loss
#: of the first batch, before any update, stops the run. Recipes that learn stay well below it:
#: warm-up spikes of the study's recipes reach 3x (docs/check.md); Adam at 1e3 reached 1e32.
DIVERGENCE_FACTOR = 10.0


class Precision:
    """Mixed precision on CUDA (bf16, or fp16 with loss scaling); plain fp32 elsewhere, unless
    ``autocast_on_cpu`` (tests: the CPU takes the GPU's branch, autocast and the loss scaler, with
    the CPU's own bf16 and fp16 kernels)."""

    def __init__(self, device: torch.device, precision: str, autocast_on_cpu: bool = False) -> None:
        if precision not in PRECISIONS:
            raise SrbenchError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        self.device = device
        mixed = device.type == "cuda" or (autocast_on_cpu and device.type == "cpu")
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision) if mixed else None
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype is torch.float16)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)


def use_deterministic_kernels(enabled: bool) -> None:
    """Deterministic kernels or the fastest ones. On CPU, PyTorch's kernels are deterministic for
    a fixed thread count either way. On CUDA, ``enabled`` selects deterministic kernels
    (``torch.use_deterministic_algorithms``; cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG``, set here
    before its first use) and turns off cuDNN's autotuner, so that a rerun on the same GPU is
    bit-identical; an operation with no deterministic CUDA kernel warns instead of failing."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


OPTIMIZERS = ("adam", "sgd")
CLIP_MODES = ("norm", "adjustable")
SCHEDULES = ("step", "cosine")


@dataclass(frozen=True)
class OptimizerConfig:
    """How one network learns: Adam or SGD with momentum, weight decay, a step decay of the
    learning rate and gradient clipping.

    ``schedule``: ``step`` multiplies the learning rate by ``decay_factor`` every ``decay_every``
    steps (None: constant); ``cosine`` anneals it to 0 over ``total_steps`` (Loshchilov & Hutter
    2017), so that the final weights are not one noisy step's. ``warmup_steps`` ramps the rate
    linearly from 0 first (Goyal et al. 2017).
    ``last_layer_lr``: a separate rate for the network's last layer (its bias too unless
    ``bias_lr`` is set), and ``bias_lr`` one for every bias (Caffe's ``lr_mult``: SRCNN's released solver trains the
    reconstruction layer and all biases at 1e-5, the other weights at 1e-4).
    ``grad_clip_mode``: ``norm`` clips the global gradient norm to ``grad_clip``; ``adjustable``
    is Kim et al. 2016's adjustable clipping, every gradient to ±``grad_clip`` / current rate
    (of its parameter group), so that no weight moves by more than about ``grad_clip`` a step
    (``grad_clip`` / (1 − momentum) with momentum).
    """

    name: str = "adam"
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "step"
    decay_every: int | None = None
    decay_factor: float = 0.1
    total_steps: int | None = None
    warmup_steps: int = 0
    last_layer_lr: float | None = None
    bias_lr: float | None = None
    grad_clip: float | None = None
    grad_clip_mode: str = "norm"

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise SrbenchError(f"optimizer {self.name!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.grad_clip_mode not in CLIP_MODES:
            raise SrbenchError(f"grad_clip_mode {self.grad_clip_mode!r}: choose one of {', '.join(CLIP_MODES)}")
        if self.schedule not in SCHEDULES:
            raise SrbenchError(f"schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}")
        if self.schedule == "cosine" and not self.total_steps:
            raise SrbenchError("schedule 'cosine' needs total_steps (the length of the run)")

    def lr_factor(self, step: int) -> float:
        """The learning rate after ``step`` updates, as a fraction of the initial one."""
        warmup = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.schedule == "cosine":
            return warmup * 0.5 * (1.0 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))
        if self.decay_every:
            return warmup * self.decay_factor ** (step // self.decay_every)
        return warmup


def _parameter_groups(model: nn.Module, config: OptimizerConfig) -> list[dict]:
    """One parameter group per learning rate: biases at ``bias_lr``, the last layer's weights at
    ``last_layer_lr``, everything else at ``lr`` (the first group, whose rate is logged)."""
    parameters = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    last_layer = parameters[-1][0].rpartition(".")[0]
    groups: dict[float, list[nn.Parameter]] = {config.lr: []}
    for name, parameter in parameters:
        rate = config.lr
        if config.bias_lr is not None and name.endswith("bias"):
            rate = config.bias_lr
        elif config.last_layer_lr is not None and name.rpartition(".")[0] == last_layer:
            rate = config.last_layer_lr
        groups.setdefault(rate, []).append(parameter)
    return [{"params": params, "lr": rate} for rate, params in groups.items() if params]


class Optimization:
    """An optimiser and its learning-rate schedule for one network; ``step`` takes one update."""

    def __init__(self, model: nn.Module, config: OptimizerConfig, precision: Precision) -> None:
        self.config = config
        self.precision = precision
        groups = _parameter_groups(model, config)
        if config.name == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
            )
        else:
            self.optimizer = torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: config.lr_factor(step))

    @property
    def lr(self) -> float:
        """The current learning rate (of the first parameter group)."""
        return self.optimizer.param_groups[0]["lr"]

    def step(self, loss: Tensor) -> None:
        """Backward pass, gradient clipping, optimiser step, learning-rate schedule step."""
        scaler, config = self.precision.scaler, self.config
        self.optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.grad_clip:
            scaler.unscale_(self.optimizer)
            if config.grad_clip_mode == "adjustable":  # each group at theta / its own current rate
                for group in self.optimizer.param_groups:
                    if group["lr"] > 0:
                        torch.nn.utils.clip_grad_value_(group["params"], config.grad_clip / group["lr"])
            else:
                parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
                torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        scaler.step(self.optimizer)
        scaler.update()
        self.scheduler.step()

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


@contextlib.contextmanager
def _looking_only(model: nn.Module) -> Iterator[None]:
    """No gradients, and the model's buffers (BatchNorm's running statistics) put back after: a
    forward pass in training mode that changes nothing."""
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
    try:
        with torch.no_grad():
            yield
    finally:
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(buffers[name])


class PixelObjective:
    """Squared error between SR and HR (SRCNN, VDSR, SRResNet and the study's CNNs).

    The optimised loss is ``loss_scale`` × the per-element mean squared error, so that a paper's
    learning rate means what it meant in its framework: 1 for PyTorch's ``MSELoss()`` and Keras'
    ``'mse'``; n / 2 for Caffe's ``EuclideanLoss`` (½ Σ over each label's n values, averaged
    over the batch), with n the paper's label size (SRCNN: 21 × 21 luma values, 220.5). The
    logged ``loss`` is always the per-element MSE, so that every recipe's curve reads on one scale."""

    def __init__(self, model: nn.Module, optimizer: OptimizerConfig, precision: Precision, loss_scale: float = 1.0) -> None:
        if not loss_scale > 0:
            raise SrbenchError(f"loss_scale {loss_scale!r}: must be a positive number")
        self.model = model
        self.precision = precision
        self.loss_scale = loss_scale
        self.optimization = Optimization(model, optimizer, precision)
        self.network = model  # what the training step runs: the model, or a wrapper of it

    def wrap(self, wrapper: Callable[[nn.Module], nn.Module]) -> None:
        """Train through ``wrapper(model)`` (DistributedDataParallel, torch.compile); the model
        itself keeps the weights that are validated, checkpointed and saved."""
        self.network = wrapper(self.model)

    def step(self, lr: Tensor, hr: Tensor) -> dict[str, Tensor]:
        with self.precision.autocast():
            mse = F.mse_loss(self.network(lr).float(), hr)
        self.optimization.step(mse * self.loss_scale)
        return {"loss": mse.detach()}

    def watched_loss(self, lr: Tensor, hr: Tensor) -> Tensor:
        """The logged loss of a batch with the current weights, changing nothing."""
        with _looking_only(self.model), self.precision.autocast():
            return F.mse_loss(self.model(lr).float(), hr)

    def state_dict(self) -> dict:
        return {"optimization": self.optimization.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimization.load_state_dict(state["optimization"])


class AdversarialObjective:
    """SRGAN (Ledig et al. 2017, Eq. 3), also the study's GAN: the discriminator learns HR → 1,
    SR → 0 with binary cross-entropy; the generator minimises the content loss (VGG features, or
    the pixel MSE for SRGAN-MSE) plus ``adversarial_weight`` × −log D(G(LR)). Generator and
    discriminator share one optimiser configuration, each with its own optimiser."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        content_loss: nn.Module,
        optimizer: OptimizerConfig,
        adversarial_weight: float,
        precision: Precision,
    ) -> None:
        self.model = generator
        self.discriminator = discriminator
        self.content_loss = content_loss
        self.adversarial_weight = adversarial_weight
        self.precision = precision
        self.optimization = Optimization(generator, optimizer, precision)
        self.discriminator_optimization = Optimization(discriminator, optimizer, precision)
        self.network, self.critic = generator, discriminator  # what the training step runs

    def wrap(self, wrapper: Callable[[nn.Module], nn.Module]) -> None:
        """Train both networks through ``wrapper`` (DistributedDataParallel, torch.compile)."""
        self.network, self.critic = wrapper(self.model), wrapper(self.discriminator)

    def step(self, lr: Tensor, hr: Tensor) -> dict[str, Tensor]:
        with self.precision.autocast():
            sr = self.network(lr)
            real_logits = self.critic(hr)
            fake_logits = self.critic(sr.detach())
            discriminator_loss = adversarial_loss(real_logits, True) + adversarial_loss(fake_logits, False)
        self.discriminator_optimization.step(discriminator_loss)

        with self.precision.autocast():
            content = self.content_loss(sr.float(), hr)
            fooling = adversarial_loss(self.critic(sr), True)
            generator_loss = content + self.adversarial_weight * fooling
        self.optimization.step(generator_loss)
        return {
            "loss": generator_loss.detach(),
            "content_loss": content.detach(),
            "adversarial_loss": fooling.detach(),
            "discriminator_loss": discriminator_loss.detach(),
            "d_real": torch.sigmoid(real_logits.detach()).mean(),
            "d_fake": torch.sigmoid(fake_logits.detach()).mean(),
        }

    def watched_loss(self, lr: Tensor, hr: Tensor) -> Tensor:
        """The content loss of a batch with the current generator, changing nothing."""
        with _looking_only(self.model), self.precision.autocast():
            return self.content_loss(self.model(lr).float(), hr)

    def state_dict(self) -> dict:
        return {
            "optimization": self.optimization.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "discriminator_optimization": self.discriminator_optimization.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.optimization.load_state_dict(state["optimization"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.discriminator_optimization.load_state_dict(state["discriminator_optimization"])


Objective = PixelObjective | AdversarialObjective


@dataclass(frozen=True)
class Schedule:
    """How long to train and how often to log, validate and checkpoint (in steps)."""

    steps: int
    log_every: int = 10
    validate_every: int = 100
    checkpoint_every: int = 100


@dataclass
class Progress:
    """Where a run stands, as a checkpoint keeps it: the last step taken, the history so far, the
    training seconds so far and the loss of the first batch (the divergence rule's reference)."""

    step: int = 0
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    initial_loss: float | None = None


def _save_checkpoint(path: Path, objective: Objective, progress: Progress, fingerprint: dict | None) -> None:
    state = {
        "step": progress.step, "history": progress.history, "seconds": progress.seconds, "initial_loss": progress.initial_loss,
        "fingerprint": fingerprint, "model": objective.model.state_dict(), "objective": objective.state_dict(),
    }
    save_torch(state, path)


def _differences(saved: Any, wanted: Any, prefix: str = "") -> list[str]:
    """``key: saved -> wanted`` for every leaf where two fingerprints differ."""
    if isinstance(saved, dict) and isinstance(wanted, dict):
        return [line for key in sorted(set(saved) | set(wanted), key=str) for line in _differences(saved.get(key), wanted.get(key), f"{prefix}{key}.")]
    if saved == wanted:
        return []
    short = [value[:12] + "..." if isinstance(value, str) and len(value) > 15 else value for value in (saved, wanted)]  # digests
    return [f"{prefix.rstrip('.')}: {short[0]!r} -> {short[1]!r}"]


def read_checkpoint(path: Path, fingerprint: dict | None, device: torch.device | str = "cpu", steps: int | None = None) -> dict:
    """The state saved in checkpoint ``path``, refused in one line unless it was saved by a run
    with the same ``fingerprint`` (None: any run) at a step of a ``steps``-step run (None: any)."""
    start_over = "run without --resume to train from step 0"
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointMismatch(f"{path}: not a srbench checkpoint (it holds objects that weights-only loading refuses); {start_over}") from error
    except (RuntimeError, EOFError) as error:
        reason = error_reason(error) + ("" if str(error).strip() else f": {path.stat().st_size} bytes")  # an empty file: EOFError, no message
        raise CheckpointMismatch(f"{path}: not a readable checkpoint ({reason}); {start_over}") from error
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointMismatch(f"{path}: not a srbench checkpoint; {start_over}")
    if fingerprint is not None and state.get("fingerprint") is None:
        raise CheckpointMismatch(f"{path}: saved by an srbench whose checkpoints carry no fingerprint of their run; {start_over}")
    if fingerprint is not None:
        differences = _differences(state["fingerprint"], fingerprint)
        if differences:
            raise CheckpointMismatch(f"{path}: made by another run ({'; '.join(differences)}); {start_over}")
    step = state.get("step")
    if steps is not None and (isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= steps):
        raise CheckpointMismatch(f"{path}: step {step!r} is not a step of this {steps}-step run; {start_over}")
    return state


def _load_checkpoint(path: Path, objective: Objective, device: torch.device, fingerprint: dict | None, steps: int) -> Progress:
    """The progress kept in ``path``, its weights and optimiser state loaded into ``objective``."""
    state = read_checkpoint(path, fingerprint, device, steps)
    try:
        objective.model.load_state_dict(state["model"])
        objective.load_state_dict(state["objective"])
        return Progress(state["step"], state["history"], state["seconds"], state.get("initial_loss"))
    except (KeyError, ValueError, RuntimeError, TypeError) as error:
        reason = error_reason(error).rstrip(":")
        raise CheckpointMismatch(f"{path}: a checkpoint of another model, recipe or srbench version ({reason}); run without --resume to train from step 0") from error


def _validate(model: nn.Module, pairs: list[ImagePair], scale: int, device: torch.device) -> dict[str, float]:
    per_image, _, _ = evaluate_pairs(model_upscaler(model, device), pairs, scale, device, description=None)
    model.train()
    return mean_metrics(per_image)


def fit(
    objective: Objective,
    sampler: PatchSampler,
    schedule: Schedule,
    device: torch.device,
    valid_pairs: list[ImagePair],
    checkpoint: Path,
    resume: bool = False,
    on_metrics: Callable[[int, dict[str, float]], None] = lambda step, metrics: None,
    step_offset: int = 0,
    world: World = World(),
    fingerprint: dict | None = None,
) -> list[dict]:
    """Train ``objective.model`` for ``schedule.steps`` steps; returns the history (one dict per
    logged or validated step, with ``seconds``: training time so far, validation excluded).
    ``on_metrics(step, metrics)`` receives every logged value with its global step
    (``step_offset`` + local step), e.g. to send it to an experiment tracker.

    Checkpoints carry ``fingerprint`` (what shaped the run: params, data, code); with ``resume``
    the run continues from ``checkpoint`` only when it was saved with an equal fingerprint, and
    refuses any other checkpoint in one line. The objective's networks must already be on
    ``device``. Losses stay on the device between log steps (no synchronisation per step).

    Divergence stops the run at the log step that sees it, before anything is checkpointed, so the
    checkpoint is the last good state: a non-finite loss, or a logged loss (the mean since the
    last log step; for a GAN its content loss) above ``DIVERGENCE_FACTOR`` times the first
    batch's loss; at the last step also the last batch's loss with the final weights (the last
    update is in no logged loss: a one-step run that blows up is caught).
    In data-parallel training (``world``) every rank calls ``fit``; logged losses are the mean
    over the ranks, and rank 0 alone validates, records and checkpoints."""
    model = objective.model.train()
    progress = Progress()
    if resume and checkpoint.is_file():
        progress = _load_checkpoint(checkpoint, objective, device, fingerprint, schedule.steps)
        logger.info("resumed from %s at step %d", checkpoint, progress.step)
    elif resume and world.main:
        logger.warning("no checkpoint at %s: starting from step 0", checkpoint)
    start, history, resumed_seconds = progress.step, progress.history, progress.seconds
    watched = "content_loss" if isinstance(objective, AdversarialObjective) else "loss"

    def record(step: int, metrics: dict[str, float]) -> None:
        history.append({"step": step_offset + step, "seconds": round(progress.seconds, 3), **metrics})
        on_metrics(step_offset + step, metrics)

    running: dict[str, Tensor] = {}
    since_log, clock = 0, time.perf_counter()
    bar_mode = None if world.main else "off"  # one bar, rank 0's
    with show_progress(schedule.steps, "train", "step", initial=start, every=None, log=logger, mode=bar_mode) as bar:
        for step in range(start + 1, schedule.steps + 1):
            lr, hr = sampler.batch(step)
            losses = objective.step(lr, hr)
            if progress.initial_loss is None:  # the first batch, before any update: one sync, once
                progress.initial_loss = world.mean(losses[watched].float()).item()
            for key, value in losses.items():
                running[key] = running[key] + value if key in running else value
            since_log += 1
            bar.update()

            last = step == schedule.steps
            due = (schedule.log_every, schedule.validate_every, schedule.checkpoint_every)
            if last or any(step % every == 0 for every in due):
                sums = world.mean(torch.stack([value.float() for value in running.values()]))
                averaged = dict(zip(running, (value / since_log for value in sums.tolist())))  # the one sync
                if not all(math.isfinite(value) for value in averaged.values()):
                    raise TrainingDiverged(f"training diverged by step {step}: {averaged} (lower the learning rate)")
                checked = {watched: averaged[watched]}
                if last:  # the last update is in no logged loss: the last batch again, with the final weights
                    checked[f"{watched} after the last update"] = world.mean(objective.watched_loss(lr, hr).float()).item()
                for name, value in checked.items():
                    if not value <= DIVERGENCE_FACTOR * progress.initial_loss:  # NaN too
                        raise TrainingDiverged(
                            f"training diverged by step {step}: {name} {value:.4g} is over {DIVERGENCE_FACTOR:g}x "
                            f"the first batch's {progress.initial_loss:.4g} (lower the learning rate)"
                        )
                progress.seconds += time.perf_counter() - clock
                running, since_log = {}, 0
                if world.main:
                    record(step, averaged | {"lr": objective.optimization.lr})
                    rate = (step - start) / (progress.seconds - resumed_seconds)
                    bar.update(0, loss=averaged["loss"])
                    if not bar.drawing:  # in logs, this line is the progress: step, loss, rate, ETA
                        logger.info(
                            "step %d/%d loss %.5f (%.2f steps/s, eta %s)",
                            step, schedule.steps, averaged["loss"], rate, format_seconds((schedule.steps - step) / rate),
                        )
                    if step % schedule.validate_every == 0 or last:
                        metrics = _validate(model, valid_pairs, sampler.scale, device)
                        record(step, {f"val_{key}": value for key, value in metrics.items()})
                        logger.info("step %d validation psnr_y %.3f dB ssim_y %.4f", step, metrics["psnr_y"], metrics["ssim_y"])
                    if step % schedule.checkpoint_every == 0 or last:
                        progress.step = step
                        _save_checkpoint(checkpoint, objective, progress, fingerprint)
                clock = time.perf_counter()
    return history
