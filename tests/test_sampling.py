"""Training batches: the crops and their 8 symmetries, determinism per (seed, step), shards,
the on-device and host stores, prefetching and memory formats."""

from pathlib import Path

import numpy as np
import pytest
import torch

from srbench.errors import SrbenchError
from srbench.sampling import CHANNEL_ORDERS, DIHEDRAL, PatchSampler, crop, dihedral_offsets


def reference_crop(patch: np.ndarray, top: int, left: int, size: int, transform: int) -> np.ndarray:
    """What the sampler promises, written the slow way: crop, np.rot90, then a left-right flip."""
    window = np.rot90(patch[top : top + size, left : left + size], transform % 4)
    return window[:, ::-1] if transform >= 4 else window


def test_crop_applies_each_of_the_8_symmetries_of_the_square() -> None:
    store = torch.from_numpy(np.random.default_rng(0).integers(0, 256, size=(3, 12, 12, 3), dtype=np.uint8))
    draws = torch.tensor([[t % 3, t % 4, (2 * t) % 5, t] for t in range(len(DIHEDRAL))])
    crops = crop(store, draws, dihedral_offsets(6, 12))
    for (patch, top, left, transform), got in zip(draws.tolist(), crops):
        assert np.array_equal(got.numpy(), reference_crop(store[patch].numpy(), top, left, 6, transform)), transform
    # Every transform is a different image of the same crop: 8 distinct results.
    same_corner = torch.tensor([[0, 1, 1, t] for t in range(len(DIHEDRAL))])
    assert len({crop(store, same_corner, dihedral_offsets(6, 12))[t].numpy().tobytes() for t in range(len(DIHEDRAL))}) == 8


def test_crop_offsets_hr_corners_by_the_scale() -> None:
    store = torch.arange(2 * 8 * 8 * 1, dtype=torch.int64).view(2, 8, 8, 1)
    [got] = crop(store, torch.tensor([[1, 1, 2, 0]]), dihedral_offsets(4, 8), offset_scale=2)
    assert torch.equal(got, store[1, 2:6, 4:8])


def test_batches_are_a_function_of_seed_and_step(prepared_x2: Path) -> None:
    first = PatchSampler(prepared_x2, batch_size=4, crop_size=16, seed=0)
    again = PatchSampler(prepared_x2, batch_size=4, crop_size=16, seed=0)
    other_seed = PatchSampler(prepared_x2, batch_size=4, crop_size=16, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(first.batch(7), again.batch(7)))
    assert not torch.equal(first.batch(7)[1], first.batch(8)[1])
    assert not torch.equal(first.batch(7)[1], other_seed.batch(7)[1])
    lr, hr = first.batch(7)
    assert lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 16, 16) and lr.dtype == hr.dtype == torch.float32
    assert 0 <= float(hr.min()) and float(hr.max()) <= 1


def test_batches_match_the_reference_crops_of_the_store(prepared_x2: Path) -> None:
    sampler = PatchSampler(prepared_x2, batch_size=6, crop_size=16, seed=2)
    hr_store = np.load(prepared_x2 / "train_hr.npy")
    lr_store = np.load(prepared_x2 / "train_lr.npy")
    lr, hr = sampler.batch(3)
    for (patch, top, left, transform, order), lr_got, hr_got in zip(sampler.draws(3), lr, hr):
        assert order == 0  # no channel permutation unless asked for
        expected_hr = reference_crop(hr_store[patch], 2 * top, 2 * left, 16, transform)
        expected_lr = reference_crop(lr_store[patch], top, left, 8, transform)
        assert np.array_equal((hr_got * 255).round().byte().permute(1, 2, 0).numpy(), expected_hr)
        assert np.array_equal((lr_got * 255).round().byte().permute(1, 2, 0).numpy(), expected_lr)


def test_rgb_permutation_reorders_lr_and_hr_alike_and_leaves_the_other_draws(prepared_x2: Path) -> None:
    plain = PatchSampler(prepared_x2, batch_size=32, crop_size=16, seed=2)
    permuted = PatchSampler(prepared_x2, batch_size=32, crop_size=16, seed=2, rgb_permutation=True)
    draws = permuted.draws(3)
    assert np.array_equal(draws[:, :4], plain.draws(3)[:, :4])  # same patches, corners and flips
    assert len(set(draws[:, 4])) > 1 and set(draws[:, 4]) <= set(range(len(CHANNEL_ORDERS)))
    (lr, hr), (lr_plain, hr_plain) = permuted.batch(3), plain.batch(3)
    for order, got_lr, got_hr, want_lr, want_hr in zip(draws[:, 4], lr, hr, lr_plain, hr_plain):
        channels = list(CHANNEL_ORDERS[order])
        assert torch.equal(got_lr, want_lr[channels]) and torch.equal(got_hr, want_hr[channels])


def test_luma_batches_are_the_bt601_y_of_the_rgb_batches(prepared_x2: Path) -> None:
    rgb = PatchSampler(prepared_x2, batch_size=4, crop_size=16, seed=1)
    luma = PatchSampler(prepared_x2, batch_size=4, crop_size=16, seed=1, channels="y")
    for got, colour in zip(luma.batch(5), rgb.batch(5)):
        assert got.shape == (colour.shape[0], 1, *colour.shape[2:])
        expected = (16 + 65.481 * colour[:, 0] + 128.553 * colour[:, 1] + 24.966 * colour[:, 2]) / 255
        torch.testing.assert_close(got[:, 0], expected, atol=1e-6, rtol=0)
    with pytest.raises(SrbenchError, match="rgb_permutation: only for RGB"):
        PatchSampler(prepared_x2, batch_size=4, crop_size=16, seed=1, channels="y", rgb_permutation=True)


def test_chunks_of_steps_keep_each_batch_a_function_of_seed_and_step(prepared_x2: Path) -> None:
    chunked = PatchSampler(prepared_x2, batch_size=4, crop_size=16, seed=0, steps_per_chunk=4)
    ahead = PatchSampler(prepared_x2, batch_size=4, crop_size=16, seed=0, steps_per_chunk=4)
    later = [ahead.batch(step) for step in (7, 6, 5, 4, 3)]  # in any order, starting anywhere
    assert all(torch.equal(a, b) for step, pair in zip((7, 6, 5, 4, 3), later) for a, b in zip(chunked.batch(step), pair))
    draws = [chunked.draws(step) for step in range(8)]
    assert len({d.tobytes() for d in draws}) == 8  # every step of a chunk has its own draws


def test_shards_split_each_step_batch_between_processes(prepared_x2: Path) -> None:
    whole = PatchSampler(prepared_x2, batch_size=6, crop_size=16, seed=0)
    shards = [PatchSampler(prepared_x2, batch_size=6, crop_size=16, seed=0, shard=(rank, 3)) for rank in range(3)]
    for step in (1, 5):
        parts = [shard.batch(step) for shard in shards]
        assert all(part[1].shape[0] == 2 for part in parts)
        for index, expected in enumerate(whole.batch(step)):
            assert torch.equal(torch.cat([part[index] for part in parts]), expected)
    with pytest.raises(SrbenchError, match="batch_size=6: must be a multiple of the number of processes \\(4\\)"):
        PatchSampler(prepared_x2, batch_size=6, crop_size=16, seed=0, shard=(0, 4))


def test_store_in_memory_prefetching_and_channels_last_give_the_same_batches(prepared_x2: Path) -> None:
    plain = PatchSampler(prepared_x2, batch_size=4, crop_size=16, seed=0, steps_per_chunk=2)
    in_memory = PatchSampler(prepared_x2, batch_size=4, crop_size=16, seed=0, store_on_device=True, steps_per_chunk=2)
    prefetched = PatchSampler(prepared_x2, batch_size=4, crop_size=16, seed=0, prefetch=True, steps_per_chunk=2)
    nhwc = PatchSampler(prepared_x2, batch_size=4, crop_size=16, seed=0, memory_format=torch.channels_last, steps_per_chunk=2)
    try:
        for step in (1, 2, 3, 9, 4, 5, 17):  # consecutive chunks are prepared ahead; a jump is not
            expected = plain.batch(step)
            for other in (in_memory, prefetched, nhwc):
                assert all(torch.equal(a, b) for a, b in zip(other.batch(step), expected)), step
        assert all(t.is_contiguous(memory_format=torch.channels_last) for t in nhwc.batch(1))
        assert all(t.is_contiguous() for t in plain.batch(1))
    finally:
        prefetched.close()


def test_sampler_rejects_crop_sizes_it_cannot_serve(prepared_x2: Path) -> None:
    with pytest.raises(SrbenchError, match="patch_size=15"):
        PatchSampler(prepared_x2, batch_size=4, crop_size=15, seed=0)
    with pytest.raises(SrbenchError, match="at most prepare.patch_size"):
        PatchSampler(prepared_x2, batch_size=4, crop_size=64, seed=0)
