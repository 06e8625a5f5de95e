"""Training batches: random crops of the prepared patch store, cut where the model trains.

A batch is a pure function of (seed, step). Its random draws (which patch, where to crop, which
of the 8 flips/rotations, which order of the colour channels) are made on the host with NumPy, the same on every machine and device,
for a chunk of consecutive steps at a time (one generator per chunk, seeded by (seed, chunk));
the chunk's pixels are then gathered in one indexing operation from a uint8 store held on the
training device when it fits (nothing crosses the bus but the draws), else from the memory-mapped
files on the host into pinned memory, on a thread, one chunk ahead. Each step then only converts
its slice of the chunk to float. Under data parallelism every rank makes the whole step's draws
and gathers its own rows, so the stream of batches does not depend on the number of processes.
"""

import logging
import math
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from srbench.colour import rgb_to_luma
from srbench.data import open_patch_stores, read_meta
from srbench.errors import SrbenchError

logger = logging.getLogger(__name__)

# The 8 symmetries of the square (np.rot90 by k, then a left-right flip when t >= 4), as affine
# maps from an output pixel (i, j) of an n x n crop to its source pixel:
# row = a*i + b*j + c*(n - 1), col = d*i + e*j + f*(n - 1), with (a, b, c, d, e, f) per transform.
DIHEDRAL = (
    (1, 0, 0, 0, 1, 0),  # identity
    (0, 1, 0, -1, 0, 1),  # rot90
    (-1, 0, 1, 0, -1, 1),  # rot180
    (0, -1, 1, 1, 0, 0),  # rot270
    (1, 0, 0, 0, -1, 1),  # flip
    (0, -1, 1, -1, 0, 1),  # rot90, flip
    (-1, 0, 1, 0, 1, 0),  # rot180, flip
    (0, 1, 0, 1, 0, 0),  # rot270, flip
)
#: The 6 orders of the R, G, B channels (the first: as stored), for ``rgb_permutation``.
CHANNEL_ORDERS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
DEVICE_STORE_SHARE = 0.25  # the store goes on the GPU when it takes at most this share of its free memory
STEPS_PER_CHUNK = 16  # batches drawn and gathered together


def dihedral_offsets(size: int, side: int, device: torch.device = torch.device("cpu")) -> Tensor:
    """(8, size, size) int64: for each transform of :data:`DIHEDRAL`, where each pixel of a
    ``size`` x ``size`` crop cornered at (0, 0) comes from, as row x ``side`` + column in a
    patch of ``side`` x ``side`` pixels."""
    i = torch.arange(size).view(size, 1)
    j = torch.arange(size).view(1, size)
    last = size - 1
    maps = [(a * i + b * j + c * last) * side + d * i + e * j + f * last for a, b, c, d, e, f in DIHEDRAL]
    return torch.stack(maps).to(device)


def crop(store: Tensor, draws: Tensor, offsets: Tensor, offset_scale: int = 1) -> Tensor:
    """Gather crops from ``store`` (N, P, P, C), one per row of ``draws`` (patch, top, left,
    transform, ...): corner ``offset_scale`` x (top, left), pixels as :func:`dihedral_offsets` maps
    them (``offsets``, on the store's device). One indexing operation; returns (B, size, size, C)."""
    side, channels = store.shape[1], store.shape[-1]
    corners = (draws[:, 0] * side + draws[:, 1] * offset_scale) * side + draws[:, 2] * offset_scale
    flat = corners.view(-1, 1, 1) + offsets[draws[:, 3]]
    return store.view(-1, channels).index_select(0, flat.view(-1)).view(*flat.shape, channels)


def reorder_channels(images: Tensor, orders: Tensor) -> Tensor:
    """(B, H, W, 3) images with the channels of each put in the order ``CHANNEL_ORDERS[orders[b]]``."""
    index = torch.tensor(CHANNEL_ORDERS, device=images.device)[orders]
    return torch.gather(images, -1, index.view(-1, 1, 1, 3).expand_as(images))


def _to_float(images: Tensor, memory_format: torch.memory_format) -> Tensor:
    """(B, H, W, C) uint8 -> (B, C, H, W) float in [0, 1] in ``memory_format``."""
    return torch.true_divide(images.permute(0, 3, 1, 2), 255).contiguous(memory_format=memory_format)


def _fits_on(device: torch.device, nbytes: int) -> bool:
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_STORE_SHARE * free


class PatchSampler:
    """Random training batches from the patch store: a random crop of ``crop_size`` HR pixels
    (aligned to the scale) from random patches, with one of the 8 flips/rotations each.

    ``rgb_permutation``: each crop's R, G and B channels in one of their 6 orders, the same for
    its LR and HR (Yoo et al., "Rethinking Data Augmentation for Image Super-resolution", CVPR
    2020: "RGB permute"), so that an RGB network sees every hue its photographs' colours map to.
    ``channels``: ``rgb`` batches, or ``y``: the BT.601 luma alone (1 channel), which a luma
    model (:class:`srbench.models.luma.LumaSR`) trains on.

    ``shard`` = (rank, world size): this process's rows of each step's batch of ``batch_size``.
    ``store_on_device``: None decides by size (on a GPU when it takes at most a quarter of its
    free memory; a CPU run reads the memory-mapped files in place). ``prefetch``: gather the next
    chunk on a thread while this one trains (None: when the store is on the host and the model
    on a GPU). ``pin_memory``: gather a host store's crops into page-locked memory, for an
    asynchronous copy to the GPU (None: when the store is on the host and the model on a GPU;
    pinning needs an NVIDIA driver, so this is the one branch a CPU-only machine cannot take).
    ``steps_per_chunk``: how many steps' batches are drawn and gathered together.
    """

    def __init__(
        self,
        prepared_dir: Path,
        batch_size: int,
        crop_size: int,
        seed: int,
        device: torch.device = torch.device("cpu"),
        shard: tuple[int, int] = (0, 1),
        memory_format: torch.memory_format = torch.contiguous_format,
        store_on_device: bool | None = None,
        prefetch: bool | None = None,
        pin_memory: bool | None = None,
        steps_per_chunk: int = STEPS_PER_CHUNK,
        channels: str = "rgb",
        rgb_permutation: bool = False,
    ) -> None:
        if channels not in ("rgb", "y"):
            raise SrbenchError(f"channels {channels!r}: choose rgb or y")
        if rgb_permutation and channels != "rgb":
            raise SrbenchError("rgb_permutation: only for RGB training (channels: rgb)")
        meta = read_meta(prepared_dir)
        self.scale = meta.scale
        if crop_size % self.scale or crop_size > meta.patch_size:
            raise SrbenchError(
                f"patch_size={crop_size}: must be a multiple of the scale ({self.scale}) "
                f"and at most prepare.patch_size ({meta.patch_size})"
            )
        rank, world_size = shard
        if batch_size % world_size:
            raise SrbenchError(f"batch_size={batch_size}: must be a multiple of the number of processes ({world_size})")
        self.batch_size, self.crop_size, self.seed, self.steps_per_chunk = batch_size, crop_size, seed, steps_per_chunk
        self.device, self.memory_format = device, memory_format
        self.channels, self.rgb_permutation = channels, rgb_permutation
        self.rows = slice(rank * batch_size // world_size, (rank + 1) * batch_size // world_size)
        hr, lr = open_patch_stores(prepared_dir, meta)
        self.count, self.max_offset = len(hr), lr.shape[1] - crop_size // self.scale
        on_device = _fits_on(device, hr.nbytes + lr.nbytes) if store_on_device is None else store_on_device
        self.store_device = device if on_device else torch.device("cpu")
        self.hr, self.lr = (self._load(array, on_device) for array in (hr, lr))
        self.lr_offsets = dihedral_offsets(crop_size // self.scale, lr.shape[1], self.store_device)
        self.hr_offsets = dihedral_offsets(crop_size, hr.shape[1], self.store_device)
        logger.info(
            "patch store: %d patches, %.2f GB, on %s", self.count, (hr.nbytes + lr.nbytes) / 1e9, self.store_device
        )
        self._chunk: tuple[int, tuple[Tensor, Tensor]] | None = None
        self._ahead: tuple[int, Future] | None = None
        prefetch = self.store_device != device if prefetch is None else prefetch
        self.pin_memory = self.store_device.type == "cpu" and device.type == "cuda" if pin_memory is None else pin_memory
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="batches") if prefetch else None

    def _load(self, array: np.ndarray, on_device: bool) -> Tensor:
        store = torch.from_numpy(array)
        if not on_device:
            return store
        chunk = max(1, math.ceil(len(array) / 16))
        parts = [store[start : start + chunk].to(self.device) for start in range(0, len(array), chunk)]
        return torch.cat(parts)

    def _chunk_draws(self, chunk: int) -> np.ndarray:
        """(steps_per_chunk, batch_size, 5) int64: every draw of the chunk's steps. The channel
        orders are drawn last, so that the other draws are the same with or without them."""
        rng = np.random.default_rng([self.seed, chunk])
        steps, size = self.steps_per_chunk, self.batch_size
        patches = np.stack([np.sort(rng.choice(self.count, size=size, replace=self.count < size)) for _ in range(steps)])
        corners = rng.integers(0, self.max_offset + 1, size=(steps, size, 2))
        transforms = rng.integers(0, len(DIHEDRAL), size=(steps, size))
        orders = rng.integers(0, len(CHANNEL_ORDERS), size=(steps, size)) if self.rgb_permutation else np.zeros((steps, size), np.int64)
        return np.concatenate([patches[..., None], corners, transforms[..., None], orders[..., None]], axis=2).astype(np.int64)

    def draws(self, step: int) -> np.ndarray:
        """The whole step's draws, (batch_size, 5) int64: patch, LR top, LR left, transform and
        channel order (:data:`CHANNEL_ORDERS`; 0 without ``rgb_permutation``)."""
        chunk, index = divmod(step, self.steps_per_chunk)
        return self._chunk_draws(chunk)[index]

    def _gather(self, chunk: int) -> tuple[Tensor, Tensor]:
        """This shard's uint8 crops for the chunk's steps, (steps, b, h, w, 3), on the device."""
        draws = torch.from_numpy(self._chunk_draws(chunk)[:, self.rows].reshape(-1, 5))
        if self.store_device.type != "cpu":
            draws = draws.pin_memory().to(self.store_device, non_blocking=True)
        lr = crop(self.lr, draws, self.lr_offsets)
        hr = crop(self.hr, draws, self.hr_offsets, offset_scale=self.scale)
        if self.rgb_permutation:
            lr, hr = reorder_channels(lr, draws[:, 4]), reorder_channels(hr, draws[:, 4])
        if self.pin_memory:
            lr, hr = lr.pin_memory(), hr.pin_memory()
        return tuple(images.view(self.steps_per_chunk, -1, *images.shape[1:]) for images in (lr, hr))

    def _fetch(self, chunk: int) -> tuple[Tensor, Tensor]:
        """The chunk's crops on the device: prepared ahead on the thread when it was asked for
        next, else now; then the following chunk is put in preparation."""
        if self._worker is None:
            crops = self._gather(chunk)
        else:
            ahead = self._ahead
            crops = ahead[1].result() if ahead is not None and ahead[0] == chunk else self._gather(chunk)
            self._ahead = (chunk + 1, self._worker.submit(self._gather, chunk + 1))
        return tuple(images.to(self.device, non_blocking=True) for images in crops)

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        """LR and HR float tensors in [0, 1] on the device, shapes (b, k, c/s, c/s) and (b, k, c, c)
        with b this shard's share of the batch and k = 3 (``rgb``) or 1 (``y``)."""
        chunk, index = divmod(step, self.steps_per_chunk)
        if self._chunk is None or self._chunk[0] != chunk:
            self._chunk = (chunk, self._fetch(chunk))
        lr, hr = (_to_float(images[index], self.memory_format) for images in self._chunk[1])
        if self.channels == "y":
            lr, hr = (rgb_to_luma(images).contiguous(memory_format=self.memory_format) for images in (lr, hr))
        return lr, hr

    def close(self) -> None:
        """Stop the prefetching thread (if any)."""
        if self._worker is not None:
            self._worker.shutdown(wait=True, cancel_futures=True)
            self._worker = None
