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

    def step(self, loss: Tensor, optimizer: torch.optim.Optimizer, grad_clip: float | None = None) -> None:
        """Backward pass, optional gradient-norm clipping, optimiser step."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if grad_clip:
            self.scaler.unscale_(optimizer)
            parameters = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()


class PixelObjective:
    """Mean squared error between SR and HR, minimised with Adam (SRCNN, VDSR, SRResNet)."""

    def __init__(self, model: nn.Module, lr: float, precision: Precision, grad_clip: float | None = None) -> None:
        self.model = model
        self.precision = precision
        self.grad_clip = grad_clip
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step(self, lr: Tensor, hr: Tensor) -> dict[str, float]:
        with self.precision.autocast():
            loss = F.mse_loss(self.model(lr).float(), hr)
        self.precision.step(loss, self.optimizer, self.grad_clip)
        return {"loss": loss.item()}

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


class AdversarialObjective:
    """SRGAN (Ledig et al. 2017, Eq. 3): the discriminator learns HR → 1, SR → 0; the generator
    minimises the VGG content loss plus ``adversarial_weight`` × −log D(G(LR))."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        content_loss: VGGContentLoss,
        lr: float,
        adversarial_weight: float,
        precision: Precision,
    ) -> None:
        self.model = generator
        self.discriminator = discriminator
        self.content_loss = content_loss
        self.adversarial_weight = adversarial_weight
        self.precision = precision
        self.optimizer = torch.optim.Adam(generator.parameters(), lr=lr)
        self.discriminator_optimizer = torch.optim.Adam(discriminator.parameters(), lr=lr)

    def step(self, lr: Tensor, hr: Tensor) -> dict[str, float]:
        with self.precision.autocast():
            sr = self.model(lr)
            real_logits = self.discriminator(hr)
            fake_logits = self.discriminator(sr.detach())
            discriminator_loss = adversarial_loss(real_logits, True) + adversarial_loss(fake_logits, False)
        self.precision.step(discriminator_loss, self.discriminator_optimizer)

        with self.precision.autocast():
            content = self.content_loss(sr.float(), hr)
            fooling = adversarial_loss(self.discriminator(sr), True)
            generator_loss = content + self.adversarial_weight * fooling
        self.precision.step(generator_loss, self.optimizer)
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
            "optimizer": self.optimizer.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "discriminator_optimizer": self.discriminator_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.discriminator_optimizer.load_state_dict(state["discriminator_optimizer"])


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
            averaged = {key: value / count for key, value in running.items()}
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

