"""Tests of the PSNR/SSIM conventions in srbench.metrics."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from srbench.metrics import channel_errors, keras_accuracy, psnr, rgb_to_y, sr_metrics, ssim, tensor_to_uint8, uint8_to_tensor


def _random_image(shape: tuple[int, int, int], seed: int, low: int = 0, high: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high, shape, dtype=np.uint8)


def _checkerboard(height: int, width: int) -> np.ndarray:
    """+1/-1 checkerboard of shape (height, width)."""
    rows, cols = np.indices((height, width))
    return np.where((rows + cols) % 2 == 0, 1, -1)


def _add_noise(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, image.shape)
    return np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("y_channel", [True, False])
def test_identical_images(y_channel: bool) -> None:
    image = _random_image((32, 40, 3), seed=0)
    assert psnr(image, image.copy(), crop_border=2, y_channel=y_channel) == float("inf")
    assert ssim(image, image.copy(), crop_border=2, y_channel=y_channel) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("d", [1, 3, 10])
def test_psnr_of_known_pattern(d: int) -> None:
    # Add +d/-d in a checkerboard to every channel: every RGB difference is ±d, so MSE_rgb = d².
    # On Y each difference is ±d·(65.481 + 128.553 + 24.966)/255 = ±d·219/255, so MSE_y = (219 d / 255)².
    base = _random_image((30, 34, 3), seed=d, low=d, high=256 - d)  # stays inside [0, 255] after ±d
    pattern = (_checkerboard(30, 34) * d)[..., None]
    noisy = (base.astype(np.int64) + pattern).astype(np.uint8)
    assert psnr(noisy, base, crop_border=0, y_channel=False) == pytest.approx(
        10 * math.log10(255**2 / d**2), abs=1e-9
    )
    mse_y = (219.0 * d / 255.0) ** 2
    assert psnr(noisy, base, crop_border=3, y_channel=True) == pytest.approx(10 * math.log10(255**2 / mse_y), abs=1e-9)


def test_psnr_per_channel_difference_on_y() -> None:
    # Only the green channel differs, by exactly 5: MSE_rgb = 25/3, MSE_y = (5·128.553/255)².
    base = _random_image((20, 20, 3), seed=7, low=0, high=250)
    other = base.copy()
    other[..., 1] += 5
    assert psnr(other, base, 0, False) == pytest.approx(10 * math.log10(255**2 / (25 / 3)), abs=1e-9)
    mse_y = (5 * 128.553 / 255) ** 2
    assert psnr(other, base, 0, True) == pytest.approx(10 * math.log10(255**2 / mse_y), abs=1e-9)


def test_rgb_to_y_extremes_and_primaries() -> None:
    white = np.full((2, 3, 3), 255, dtype=np.uint8)
    black = np.zeros((2, 3, 3), dtype=np.uint8)
    y_white = rgb_to_y(white)
    assert y_white.dtype == np.float64 and y_white.shape == (2, 3)
    np.testing.assert_allclose(y_white, 235.0, atol=1e-12)
    np.testing.assert_allclose(rgb_to_y(black), 16.0, atol=1e-12)
    red = np.zeros((1, 1, 3), dtype=np.uint8)
    red[..., 0] = 255
    np.testing.assert_allclose(rgb_to_y(red), 16.0 + 65.481, atol=1e-12)
    # Floats on the 0-255 scale are accepted too.
    np.testing.assert_allclose(rgb_to_y(np.full((1, 1, 3), 127.5)), 16.0 + 219.0 / 2, atol=1e-12)


@pytest.mark.parametrize("y_channel", [True, False])
def test_border_only_difference_disappears_after_cropping(y_channel: bool) -> None:
    base = _random_image((24, 24, 3), seed=3)
    other = base.copy()
    other[:2] ^= 0xFF  # differ only in the top 2 rows...
    other[:, -1] ^= 0x0F  # ...and in the last column
    assert math.isfinite(psnr(other, base, crop_border=1, y_channel=y_channel))
    assert psnr(other, base, crop_border=2, y_channel=y_channel) == float("inf")
    assert ssim(other, base, crop_border=0, y_channel=y_channel) < 1.0
    assert ssim(other, base, crop_border=2, y_channel=y_channel) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("crop_border", [0, 4])
def test_ssim_matches_skimage_on_y(crop_border: int) -> None:
    # skimage filters with reflect padding but then averages only the positions at least 5 pixels from
    # the edge, i.e. exactly the full 11×11 windows ('valid') used here, with the same truncated Gaussian
    # (radius int(3.5·1.5 + 0.5) = 5): the two agree up to float64 rounding.
    hr = _random_image((64, 80, 3), seed=11)
    sr = _add_noise(hr, 12.0, seed=12)
    ours = ssim(sr, hr, crop_border=crop_border, y_channel=True)
    c = slice(crop_border, -crop_border) if crop_border else slice(None)
    reference = structural_similarity(
        rgb_to_y(sr[c, c]),
        rgb_to_y(hr[c, c]),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert ours == pytest.approx(reference, abs=1e-9)


def test_ssim_rgb_is_mean_of_channels() -> None:
    hr = _random_image((40, 40, 3), seed=21)
    sr = _add_noise(hr, 8.0, seed=22)
    per_channel = [
        structural_similarity(
            sr[..., k].astype(np.float64),
            hr[..., k].astype(np.float64),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )
        for k in range(3)
    ]
    assert ssim(sr, hr, crop_border=0, y_channel=False) == pytest.approx(np.mean(per_channel), abs=1e-9)


def test_ssim_and_psnr_decrease_with_noise() -> None:
    hr = _random_image((48, 48, 3), seed=31, low=40, high=216)
    ssims = [ssim(_add_noise(hr, sigma, seed=32), hr, 2, True) for sigma in (2.0, 8.0, 25.0)]
    psnrs = [psnr(_add_noise(hr, sigma, seed=32), hr, 2, True) for sigma in (2.0, 8.0, 25.0)]
    assert 1.0 > ssims[0] > ssims[1] > ssims[2]
    assert psnrs[0] > psnrs[1] > psnrs[2]


@pytest.mark.parametrize("metric", [psnr, ssim, lambda a, b, crop_border, _: channel_errors(a, b, crop_border)])
def test_shape_mismatch_raises(metric: Callable[..., object]) -> None:
    a = np.zeros((20, 20, 3), dtype=np.uint8)
    b = np.zeros((20, 21, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"\(20, 20, 3\).*\(20, 21, 3\)"):
        metric(a, b, 0, True)


def test_invalid_inputs_raise() -> None:
    a = np.zeros((20, 20, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        psnr(a.astype(np.float32), a.astype(np.float32), 0, False)
    with pytest.raises(ValueError, match="crop_border"):
        psnr(a, a, 10, False)
    with pytest.raises(ValueError, match="11"):
        ssim(a, a, 5, True)
    with pytest.raises(ValueError, match="uint8"):
        channel_errors(a.astype(np.float32), a.astype(np.float32), 0)
    with pytest.raises(ValueError, match="crop_border 10"):
        channel_errors(a, a, 10)
    with pytest.raises(ValueError, match="H×W×3"):
        channel_errors(a[..., 0], a[..., 0], 0)


def test_channel_errors_of_a_red_cast() -> None:
    hr = _random_image((20, 24, 3), seed=71, high=250)
    sr = hr.copy()
    sr[..., 0] += 3  # SR redder than HR everywhere
    errors = channel_errors(sr, hr, crop_border=0)
    assert errors == {"mean_error_r": 3.0, "mean_error_g": 0.0, "mean_error_b": 0.0, "worst_channel_error": 3.0}
    assert channel_errors(hr, sr, crop_border=0)["mean_error_r"] == -3.0  # signed: SR − HR


def test_channel_errors_of_a_darker_image() -> None:
    hr = _random_image((20, 24, 3), seed=72, low=2)
    errors = channel_errors(hr - 2, hr, crop_border=2)
    assert [errors[f"mean_error_{c}"] for c in "rgb"] == [-2.0, -2.0, -2.0]
    assert errors["worst_channel_error"] == 2.0  # a magnitude: positive


def test_channel_errors_leave_the_border_out() -> None:
    hr = _random_image((20, 24, 3), seed=73, high=150)
    sr = hr.copy()
    sr[:3] += 50  # the top 3 rows...
    sr[:, -3:, 2] += 50  # ...and the last 3 columns of blue differ
    assert channel_errors(sr, hr, crop_border=3) == dict.fromkeys(("mean_error_r", "mean_error_g", "mean_error_b", "worst_channel_error"), 0.0)
    inside = channel_errors(sr, hr, crop_border=2)
    assert inside["mean_error_r"] == pytest.approx(50 / 16) and inside["mean_error_b"] > inside["mean_error_r"]
    assert inside["worst_channel_error"] == inside["mean_error_b"]


def test_channel_errors_of_identical_images_are_zero() -> None:
    image = _random_image((16, 16, 3), seed=74)
    assert set(channel_errors(image, image.copy(), crop_border=1).values()) == {0.0}


def test_sr_metrics_keys_and_crop() -> None:
    hr = _random_image((30, 36, 3), seed=41)
    sr = _add_noise(hr, 5.0, seed=42)
    metrics = sr_metrics(sr, hr, scale=3)
    assert list(metrics) == [
        "psnr_y", "ssim_y", "psnr_rgb", "mean_error_r", "mean_error_g", "mean_error_b", "worst_channel_error", "keras_accuracy",
    ]
    assert metrics["psnr_y"] == psnr(sr, hr, 3, True)
    assert metrics["ssim_y"] == ssim(sr, hr, 3, True)
    assert metrics["psnr_rgb"] == psnr(sr, hr, 3, False)
    assert metrics["keras_accuracy"] == keras_accuracy(sr, hr, 3)
    assert {key: metrics[key] for key in channel_errors(sr, hr, 3)} == channel_errors(sr, hr, 3)
    assert all(isinstance(value, float) for value in metrics.values())


def test_keras_accuracy_of_hand_made_pixels() -> None:
    # One row of 8 pixels; the dominant channel (first one on ties) of HR and of SR:
    hr = np.array(
        [[[200, 10, 10], [10, 200, 10], [10, 10, 200], [90, 90, 10], [50, 50, 50], [0, 0, 0], [10, 20, 30], [30, 20, 10]]],
        dtype=np.uint8,
    )  # R, G, B, R (R = G tie), R (all equal), R (all zero), B, R
    sr = np.array(
        [[[255, 254, 0], [0, 1, 0], [10, 200, 10], [90, 91, 10], [7, 7, 7], [1, 0, 1], [0, 0, 1], [0, 0, 0]]],
        dtype=np.uint8,
    )  # R (match), G (match), G (miss), G (miss), R (match), R (match), B (match), R (match)
    assert keras_accuracy(sr, hr, crop_border=0) == 6 / 8
    assert keras_accuracy(hr, sr, crop_border=0) == 6 / 8  # symmetric


def test_keras_accuracy_is_one_for_identical_images_and_ignores_magnitude() -> None:
    image = _random_image((20, 24, 3), seed=61)
    assert keras_accuracy(image, image.copy(), crop_border=2) == 1.0
    # Each pixel's dominant channel is 150 above the others; halving every value keeps it dominant.
    hr = _random_image((20, 24, 3), seed=62, high=100)
    channel = np.random.default_rng(63).integers(0, 3, (20, 24))
    hr[np.arange(20)[:, None], np.arange(24)[None, :], channel] += 150
    assert keras_accuracy(hr // 2, hr, crop_border=0) == 1.0
    assert psnr(hr // 2, hr, crop_border=0, y_channel=True) < 20  # yet far from HR: not a fidelity measure


def test_keras_accuracy_crops_the_border() -> None:
    # 6×6 images that differ in every border pixel (36 - 16 = 20 of them) and agree inside.
    hr = np.zeros((6, 6, 3), dtype=np.uint8)
    hr[..., 0] = 100  # red everywhere
    sr = hr.copy()
    sr[[0, -1], :, 2] = 200  # blue on the border rows...
    sr[:, [0, -1], 2] = 200  # ...and columns
    assert keras_accuracy(sr, hr, crop_border=0) == 16 / 36
    assert keras_accuracy(sr, hr, crop_border=1) == 1.0
    with pytest.raises(ValueError, match="crop_border 3"):
        keras_accuracy(sr, hr, crop_border=3)
    with pytest.raises(ValueError, match="shape"):
        keras_accuracy(sr, hr[:5], crop_border=0)


def test_tensor_round_trip() -> None:
    image = _random_image((9, 13, 3), seed=51)
    tensor = uint8_to_tensor(image)
    assert tensor.shape == (1, 3, 9, 13) and tensor.dtype == torch.float32
    assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0
    assert np.array_equal(tensor_to_uint8(tensor), image)
    assert np.array_equal(tensor_to_uint8(tensor[0]), image)


def test_tensor_to_uint8_clamps_and_rounds() -> None:
    x = torch.tensor([-0.2, 1.3, 0.5, 10.4 / 255, 10.6 / 255, 1.0]).reshape(1, 3, 1, 2)
    out = tensor_to_uint8(x)
    assert out.dtype == np.uint8 and out.shape == (1, 2, 3)
    # Channel-major input (R = [-0.2, 1.3], G = [0.5, 10.4/255], B = [10.6/255, 1.0]).
    assert out[0, 0].tolist() == [0, 128, 11]
    assert out[0, 1].tolist() == [255, 10, 255]
