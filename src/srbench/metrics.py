"""PSNR and SSIM as the super-resolution literature reports them (BasicSR's convention), the mean
error of each colour channel (a colour cast or a brightness offset, which a PSNR mean hides), and
the Keras ``accuracy`` of the study whose models we reproduce.

PSNR and SSIM work on the 0-255 scale in float64, after cropping ``crop_border`` pixels from every
side, either on the BT.601 luma (Y) channel or on the RGB channels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

# BT.601 luma coefficients for R, G, B in [0, 1], giving Y in [16, 235] (MATLAB rgb2ycbcr).
_Y_COEFFS = np.array([65.481, 128.553, 24.966], dtype=np.float64)

_SSIM_RADIUS = 5  # 11×11 window
_SSIM_SIGMA = 1.5
_SSIM_C1 = (0.01 * 255.0) ** 2
_SSIM_C2 = (0.03 * 255.0) ** 2


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """Return the float64 BT.601 Y channel (in [16, 235]) of an H×W×3 RGB image on the 0-255 scale."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"rgb_to_y expects an H×W×3 RGB image, got shape {image.shape}")
    return 16.0 + image.astype(np.float64) @ (_Y_COEFFS / 255.0)


def _prepare(a: np.ndarray, b: np.ndarray, crop_border: int, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Validate two uint8 RGB images, crop their borders and return float64 H×W×K arrays."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected H×W×3 RGB images, got shapes {a.shape} and {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got dtypes {a.dtype} and {b.dtype}")
    if crop_border < 0 or 2 * crop_border >= min(a.shape[:2]):
        raise ValueError(f"crop_border {crop_border} is negative or leaves nothing of an image of shape {a.shape}")
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    if y_channel:
        return rgb_to_y(a)[..., None], rgb_to_y(b)[..., None]
    return a.astype(np.float64), b.astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray, crop_border: int, y_channel: bool) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 RGB images (``inf`` when identical)."""
    x, y = _prepare(a, b, crop_border, y_channel)
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * math.log10(255.0**2 / mse)


def _gaussian_window() -> np.ndarray:
    """The normalised 1-D Gaussian (11 taps, sigma 1.5) whose outer product is the SSIM window."""
    offsets = np.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=np.float64)
    window = np.exp(-(offsets**2) / (2.0 * _SSIM_SIGMA**2))
    return window / window.sum()


def _filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable Gaussian filtering of a 2-D array, keeping only positions where the window fits."""
    filtered = ndimage.correlate1d(image, window, axis=0, mode="constant")
    filtered = ndimage.correlate1d(filtered, window, axis=1, mode="constant")
    r = _SSIM_RADIUS
    return filtered[r:-r, r:-r]


def _ssim_single(x: np.ndarray, y: np.ndarray, window: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004) of two 2-D float64 arrays over all full 11×11 windows."""
    mu_x = _filter_valid(x, window)
    mu_y = _filter_valid(y, window)
    var_x = _filter_valid(x * x, window) - mu_x * mu_x
    var_y = _filter_valid(y * y, window) - mu_y * mu_y
    cov_xy = _filter_valid(x * y, window) - mu_x * mu_y
    numerator = (2.0 * mu_x * mu_y + _SSIM_C1) * (2.0 * cov_xy + _SSIM_C2)
    denominator = (mu_x * mu_x + mu_y * mu_y + _SSIM_C1) * (var_x + var_y + _SSIM_C2)
    return float(np.mean(numerator / denominator))


def ssim(a: np.ndarray, b: np.ndarray, crop_border: int, y_channel: bool) -> float:
    """SSIM of two uint8 RGB images (11×11 Gaussian window, sigma 1.5, valid filtering).

    On RGB (``y_channel`` False) it is the mean of the per-channel SSIMs.
    """
    x, y = _prepare(a, b, crop_border, y_channel)
    if min(x.shape[:2]) < 2 * _SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs at least 11×11 pixels after cropping, got {x.shape[:2]}")
    window = _gaussian_window()
    return float(np.mean([_ssim_single(x[..., k], y[..., k], window) for k in range(x.shape[2])]))


def keras_accuracy(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> float:
    """The study's Keras ``accuracy``: the fraction of pixels whose dominant colour channel is the
    same in two uint8 RGB images, after cropping ``crop_border`` pixels from every side.

    The study compiled its MSE models with ``metrics=['accuracy']``, which Keras resolves to
    categorical accuracy for (H, W, 3) outputs: ``argmax`` over the channels of SR and HR, compared
    per pixel. Ties go to the first largest channel (R before G before B), as with ``np.argmax`` and
    TensorFlow's argmax in practice; so a grey pixel counts as red. It measures no fidelity: any
    image that keeps each pixel's dominant channel scores 1.0.
    """
    x, y = _prepare(sr, hr, crop_border, y_channel=False)
    return float(np.mean(np.argmax(x, axis=2) == np.argmax(y, axis=2)))


#: A model whose mean error in some colour channel exceeds this many grey levels on an image has
#: tinted or shifted that image; the report flags it.
COLOUR_CAST_LEVELS = 2.0


def channel_errors(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> dict[str, float]:
    """The mean error SR − HR of each RGB channel of two uint8 images in grey levels (0-255
    scale), after cropping ``crop_border`` pixels from every side, as ``mean_error_r``,
    ``mean_error_g``, ``mean_error_b``; and ``worst_channel_error``, the largest of their
    magnitudes. A colour cast moves them apart; a brightness offset moves them together."""
    x, y = _prepare(sr, hr, crop_border, y_channel=False)
    means = (x - y).mean(axis=(0, 1))
    errors = {f"mean_error_{channel}": float(value) for channel, value in zip("rgb", means)}
    return errors | {"worst_channel_error": float(np.abs(means).max())}


def sr_metrics(sr: np.ndarray, hr: np.ndarray, scale: int) -> dict[str, float]:
    """PSNR/SSIM on Y, PSNR on RGB, the mean error of each colour channel (:func:`channel_errors`)
    and Keras accuracy of a uint8 SR image against its HR image, cropping ``scale`` pixels."""
    return {
        "psnr_y": psnr(sr, hr, crop_border=scale, y_channel=True),
        "ssim_y": ssim(sr, hr, crop_border=scale, y_channel=True),
        "psnr_rgb": psnr(sr, hr, crop_border=scale, y_channel=False),
        **channel_errors(sr, hr, crop_border=scale),
        "keras_accuracy": keras_accuracy(sr, hr, crop_border=scale),
    }


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """Turn a (3, H, W) or (1, 3, H, W) float tensor in [0, 1] into an H×W×3 uint8 image (clamped, rounded)."""
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"tensor_to_uint8 expects a (3, H, W) or (1, 3, H, W) tensor, got shape {tuple(x.shape)}")
    scaled = (x.detach().to(device="cpu", dtype=torch.float32).clamp(0.0, 1.0) * 255.0).round()
    return scaled.permute(1, 2, 0).numpy().astype(np.uint8)


def uint8_to_tensor(img: np.ndarray) -> torch.Tensor:
    """Turn an H×W×3 uint8 image into a (1, 3, H, W) float32 tensor in [0, 1]."""
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"uint8_to_tensor expects an H×W×3 uint8 image, got shape {img.shape}, dtype {img.dtype}")
    return torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0).contiguous()
