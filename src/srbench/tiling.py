"""Upscaling an image of any size in tiles, with bounded memory and the whole image's result.

Each LR tile is run with a margin of real neighbouring pixels at least as wide as the network's
receptive field, and only its centre is kept, so every output pixel sees the same input as in
one pass over the whole image: tiles meet without seams. Peak memory is that of one tile plus the
output image, which is assembled as uint8. The bicubic baseline is tiled the same way, with a
margin of its kernel's reach.

The functions that run a model or the bicubic resize import torch when called. The default
tile side, :data:`srbench.names.TILE`, lives with the command line's names.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from srbench.names import TILE

if TYPE_CHECKING:
    import torch
    from torch import nn

    from srbench.degradation import Rounding

logger = logging.getLogger(__name__)


def receptive_radius(model: nn.Module, scale: int, device: torch.device, probe: int = 96) -> int:
    """How many LR pixels away an input pixel can still change an output pixel, measured: the
    reach of the input gradient of the output pixels of the central LR pixel of a random
    ``probe``-sized image (widened until the gradient no longer reaches the probe's border)."""
    import torch

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


OnTile = Callable[[int, int], None]

#: LR pixels of margin for bicubic tiles: MATLAB's bicubic kernel reaches 2 LR pixels each way
#: when upscaling, so 4 leave every kept output pixel the whole image's neighbours.
BICUBIC_MARGIN = 4


def tile_count(height: int, width: int, tile: int = TILE) -> int:
    """How many ``tile`` × ``tile`` tiles cover an LR image of ``height`` × ``width``."""
    return math.ceil(height / tile) * math.ceil(width / tile)


class TiledUpscaler:
    """``run`` (an LR crop -> its ×``scale`` uint8 result) over ``tile`` × ``tile`` tiles of an LR
    image, each with ``margin`` LR pixels of its neighbours, keeping each tile's centre: called,
    the whole uint8 result; :meth:`bands`, the result a row of tiles at a time (to write it as it
    comes: memory then holds one band, whatever the image size). ``on_tile(done, total)`` is
    called after each tile."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], scale: int, tile: int, margin: int) -> None:
        self.run, self.scale, self.tile, self.margin = run, scale, tile, margin

    def bands(self, lr: np.ndarray, on_tile: OnTile = lambda done, total: None) -> Iterator[np.ndarray]:
        """The uint8 result of ``lr`` from top to bottom, ``tile`` × ``scale`` rows at a time."""
        height, width = lr.shape[:2]
        scale, tile, margin = self.scale, self.tile, self.margin
        total, done = tile_count(height, width, tile), 0
        for top in range(0, height, tile):
            bottom = min(top + tile, height)
            band = np.empty(((bottom - top) * scale, width * scale, *lr.shape[2:]), np.uint8)
            outer_top = max(top - margin, 0)
            for left in range(0, width, tile):
                right = min(left + tile, width)
                outer_left = max(left - margin, 0)
                out = self.run(lr[outer_top : min(bottom + margin, height), outer_left : min(right + margin, width)])
                y, x = (top - outer_top) * scale, (left - outer_left) * scale
                band[:, left * scale : right * scale] = out[y : y + (bottom - top) * scale, x : x + (right - left) * scale]
                done += 1
                on_tile(done, total)
            yield band

    def __call__(self, lr: np.ndarray, on_tile: OnTile = lambda done, total: None) -> np.ndarray:
        sr = np.empty((lr.shape[0] * self.scale, lr.shape[1] * self.scale, *lr.shape[2:]), np.uint8)
        row = 0
        for band in self.bands(lr, on_tile):
            sr[row : row + len(band)] = band
            row += len(band)
        return sr


def tiled_upscaler(
    model: nn.Module, device: torch.device, scale: int, tile: int = TILE, margin: int | None = None
) -> TiledUpscaler:
    """:class:`TiledUpscaler` running ``model`` (in eval mode) on ``device``, with a margin of
    ``margin`` LR pixels (default: the receptive field, :func:`receptive_radius`, measured once here)."""
    from srbench.inference import super_resolve

    model.eval()
    radius = receptive_radius(model, scale, device) if margin is None else margin
    model.zero_grad(set_to_none=True)
    logger.info("tiles of %d LR px with a margin of %d px (the network's receptive field)", tile, radius)
    return TiledUpscaler(lambda crop: super_resolve(model, crop, device), scale, tile, radius)


def tiled_bicubic(scale: int, rounding: Rounding = "per_pass", tile: int = TILE, margin: int = BICUBIC_MARGIN) -> TiledUpscaler:
    """:class:`TiledUpscaler` of :func:`srbench.degradation.upscale_bicubic`: with its default
    margin, the same uint8 image as one pass, to the bit."""
    from srbench.degradation import upscale_bicubic

    return TiledUpscaler(lambda crop: upscale_bicubic(crop, scale, rounding), scale, tile, margin)
