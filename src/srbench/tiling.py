"""Upscaling an image of any size in tiles, with bounded memory and the whole image's result.

Each LR tile is run with a margin of real neighbouring pixels at least as wide as the network's
receptive field, and only its centre is kept, so every output pixel sees the same input as in
one pass over the whole image: tiles meet without seams. Peak memory is that of one tile plus the
output image.
"""

import logging
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from srbench.metrics import tensor_to_uint8, uint8_to_tensor

logger = logging.getLogger(__name__)

#: LR pixels per tile side (before the margin): a 64-feature network at x4 keeps well under 2 GB.
TILE = 192


@torch.no_grad()
def _forward(model: nn.Module, lr: np.ndarray, device: torch.device) -> torch.Tensor:
    return model(uint8_to_tensor(lr).to(device)).float().cpu()


def receptive_radius(model: nn.Module, scale: int, device: torch.device, probe: int = 96) -> int:
    """How many LR pixels away an input pixel can still change an output pixel, measured: the
    reach of the input gradient of the output pixels of the central LR pixel of a random
    ``probe``-sized image (widened until the gradient no longer reaches the probe's border)."""
    generator = torch.Generator().manual_seed(0)
    while True:
        image = torch.rand(1, 3, probe, probe, generator=generator).to(device).requires_grad_()
        centre = probe // 2
        model(image)[..., centre * scale : (centre + 1) * scale, centre * scale : (centre + 1) * scale].sum().backward()
        reached = image.grad.abs().sum(dim=(0, 1)).nonzero()
        low, high = reached.min().item(), reached.max().item()
        if low > 0 and high < probe - 1:
            return max(centre - low, high - centre)
        probe *= 2


Progress = Callable[[int, int], None]


def tiled_upscaler(
    model: nn.Module, device: torch.device, scale: int, tile: int = TILE, margin: int | None = None
) -> Callable[..., np.ndarray]:
    """An upscaler that runs ``model`` (in eval mode) on ``tile`` × ``tile`` LR tiles, each with
    ``margin`` LR pixels of its neighbours (default: the receptive field, :func:`receptive_radius`,
    measured once here). ``upscale(lr, on_tile)`` calls ``on_tile(done, total)`` after each tile."""
    model.eval()
    radius = receptive_radius(model, scale, device) if margin is None else margin
    model.zero_grad(set_to_none=True)
    logger.info("tiles of %d LR px with a margin of %d px (the network's receptive field)", tile, radius)

    def upscale(lr: np.ndarray, on_tile: Progress = lambda done, total: None) -> np.ndarray:
        height, width = lr.shape[:2]
        sr = np.empty((height * scale, width * scale, 3), np.uint8)
        rows, columns = math.ceil(height / tile), math.ceil(width / tile)
        for index in range(rows * columns):
            top, left = index // columns * tile, index % columns * tile
            bottom, right = min(top + tile, height), min(left + tile, width)
            outer_top, outer_left = max(top - radius, 0), max(left - radius, 0)
            outer = lr[outer_top : min(bottom + radius, height), outer_left : min(right + radius, width)]
            out = _forward(model, outer, device)
            y, x = (top - outer_top) * scale, (left - outer_left) * scale
            centre = out[..., y : y + (bottom - top) * scale, x : x + (right - left) * scale]
            sr[top * scale : bottom * scale, left * scale : right * scale] = tensor_to_uint8(centre)
            on_tile(index + 1, rows * columns)
        return sr

    return upscale


def log_progress(name: str) -> Progress:
    """An ``on_tile`` that logs ``name``'s progress with an ETA, at most every 2 seconds."""
    started = last = time.perf_counter()

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.perf_counter()
        if done == total or now - last >= 2:
            last = now
            eta = (now - started) / done * (total - done)
            logger.info("%s: tile %d/%d (%.0f%%, eta %.0fs)", name, done, total, 100 * done / total, eta)

    return report
