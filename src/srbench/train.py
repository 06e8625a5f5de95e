"""One training loop for every model: draw a batch, take an optimisation step, log, validate,
checkpoint. What differs between models is the objective (MSE, or SRGAN's adversarial game)."""

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srbench.data import ImagePair, PatchSampler
from srbench.errors import SrbenchError
from srbench.inference import evaluate_pairs, mean_metrics, model_upscaler
from srbench.losses import VGGContentLoss, adversarial_loss

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")


class Precision:
    """Mixed precision on CUDA (bf16, or fp16 with loss scaling); plain fp32 elsewhere."""

    def __init__(self, device: torch.device, precision: str) -> None:
        if precision not in PRECISIONS:
            raise SrbenchError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        self.device = device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision) if device.type == "cuda" else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype is torch.float16)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)


OPTIMIZERS = ("adam", "sgd")
CLIP_MODES = ("norm", "adjustable")


@dataclass(frozen=True)
class OptimizerConfig:
    """How one network learns: Adam or SGD with momentum, weight decay, a step decay of the
    learning rate and gradient clipping.

    ``decay_every``: multiply the learning rate by ``decay_factor`` every so many steps (None: constant).
    ``last_layer_lr``: a separate rate for the network's last layer (Dong et al. 2016 train
    SRCNN's reconstruction layer at 1e-5 and the others at 1e-4).
    ``grad_clip_mode``: ``norm`` clips the global gradient norm to ``grad_clip``; ``adjustable``
    is Kim et al. 2016's adjustable clipping, every gradient to ±``grad_clip`` / current rate.
    """

    name: str = "adam"
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 0.0
    decay_every: int | None = None
    decay_factor: float = 0.1
    last_layer_lr: float | None = None
    grad_clip: float | None = None
    grad_clip_mode: str = "norm"

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise SrbenchError(f"optimizer {self.name!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.grad_clip_mode not in CLIP_MODES:
            raise SrbenchError(f"grad_clip_mode {self.grad_clip_mode!r}: choose one of {', '.join(CLIP_MODES)}")


def _parameter_groups(model: nn.Module, config: OptimizerConfig) -> list[dict]:
    parameters = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if config.last_layer_lr is None:
        return [{"params": [p for _, p in parameters]}]
    last_layer = parameters[-1][0].rpartition(".")[0]
    return [
        {"params": [p for name, p in parameters if name.rpartition(".")[0] != last_layer]},
        {"params": [p for name, p in parameters if name.rpartition(".")[0] == last_layer], "lr": config.last_layer_lr},
    ]


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
        step_size = config.decay_every or 1
        gamma = config.decay_factor if config.decay_every else 1.0
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=step_size, gamma=gamma)

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
            parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
            if config.grad_clip_mode == "adjustable":
                torch.nn.utils.clip_grad_value_(parameters, config.grad_clip / self.lr)
            else:
                torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        scaler.step(self.optimizer)
        scaler.update()
        self.scheduler.step()

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


class PixelObjective:
    """Mean squared error between SR and HR (SRCNN, VDSR, SRResNet and the study's CNNs)."""

    def __init__(self, model: nn.Module, optimizer: OptimizerConfig, precision: Precision) -> None:
        self.model = model
        self.precision = precision
        self.optimization = Optimization(model, optimizer, precision)

    def step(self, lr: Tensor, hr: Tensor) -> dict[str, float]:
        with self.precision.autocast():
            loss = F.mse_loss(self.model(lr).float(), hr)
        self.optimization.step(loss)
        return {"loss": loss.item()}

    def state_dict(self) -> dict:
        return {"optimization": self.optimization.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimization.load_state_dict(state["optimization"])


class AdversarialObjective:
    """SRGAN (Ledig et al. 2017, Eq. 3), also the study's GAN: the discriminator learns HR → 1,
    SR → 0 with binary cross-entropy; the generator minimises the VGG content loss plus
    ``adversarial_weight`` × −log D(G(LR)). Generator and discriminator share one optimiser
    configuration, each with its own optimiser."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        content_loss: VGGContentLoss,
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

    def step(self, lr: Tensor, hr: Tensor) -> dict[str, float]:
        with self.precision.autocast():
            sr = self.model(lr)
            real_logits = self.discriminator(hr)
            fake_logits = self.discriminator(sr.detach())
            discriminator_loss = adversarial_loss(real_logits, True) + adversarial_loss(fake_logits, False)
        self.discriminator_optimization.step(discriminator_loss)

        with self.precision.autocast():
            content = self.content_loss(sr.float(), hr)
            fooling = adversarial_loss(self.discriminator(sr), True)
            generator_loss = content + self.adversarial_weight * fooling
        self.optimization.step(generator_loss)
        return {
            "loss": generator_loss.item(),
            "content_loss": content.item(),
            "adversarial_loss": fooling.item(),
            "discriminator_loss": discriminator_loss.item(),
            "d_real": torch.sigmoid(real_logits).mean().item(),
            "d_fake": torch.sigmoid(fake_logits).mean().item(),
        }

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


def _format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s"


def _save_checkpoint(path: Path, step: int, objective: Objective, history: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"step": step, "model": objective.model.state_dict(), "objective": objective.state_dict(), "history": history}, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, objective: Objective, device: torch.device) -> tuple[int, list[dict]]:
    state = torch.load(path, map_location=device, weights_only=True)
    objective.model.load_state_dict(state["model"])
    objective.load_state_dict(state["objective"])
    return state["step"], state["history"]


def _validate(model: nn.Module, pairs: list[ImagePair], scale: int, device: torch.device) -> dict[str, float]:
    per_image, _, _ = evaluate_pairs(model_upscaler(model, device), pairs, scale, device)
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
) -> list[dict]:
    """Train ``objective.model`` for ``schedule.steps`` steps; returns the history (one dict per
    logged or validated step). ``on_metrics(step, metrics)`` receives every logged value with its
    global step (``step_offset`` + local step), e.g. to send it to an experiment tracker.
    With ``resume`` the run continues from ``checkpoint`` when it exists. The objective's
    networks must already be on ``device``."""
    model = objective.model.train()
    start, history = 0, []
    if resume and checkpoint.is_file():
        start, history = _load_checkpoint(checkpoint, objective, device)
        logger.info("resumed from %s at step %d", checkpoint, start)
    elif resume:
        logger.warning("no checkpoint at %s: starting from step 0", checkpoint)

    def record(step: int, metrics: dict[str, float]) -> None:
        history.append({"step": step_offset + step, **metrics})
        on_metrics(step_offset + step, metrics)

    started, running = time.perf_counter(), {}
    for step in range(start + 1, schedule.steps + 1):
        lr, hr = (tensor.to(device, non_blocking=True) for tensor in sampler.batch(step))
        losses = objective.step(lr, hr)
        if not all(math.isfinite(value) for value in losses.values()):
            raise SrbenchError(f"training diverged at step {step}: {losses} (lower the learning rate)")
        for key, value in losses.items():
            running[key] = running.get(key, 0.0) + value

        if step % schedule.log_every == 0 or step == schedule.steps:
            count = schedule.log_every if step % schedule.log_every == 0 else step % schedule.log_every
            averaged = {key: value / count for key, value in running.items()} | {"lr": objective.optimization.lr}
            running = {}
            record(step, averaged)
            rate = (step - start) / (time.perf_counter() - started)
            logger.info(
                "step %d/%d loss %.5f (%.2f steps/s, eta %s)",
                step, schedule.steps, averaged["loss"], rate, _format_seconds((schedule.steps - step) / rate),
            )
        if step % schedule.validate_every == 0 or step == schedule.steps:
            metrics = _validate(model, valid_pairs, sampler.scale, device)
            record(step, {f"val_{key}": value for key, value in metrics.items()})
            logger.info("step %d validation psnr_y %.3f dB ssim_y %.4f", step, metrics["psnr_y"], metrics["ssim_y"])
        if step % schedule.checkpoint_every == 0 or step == schedule.steps:
            _save_checkpoint(checkpoint, step, objective, history)
    return history

