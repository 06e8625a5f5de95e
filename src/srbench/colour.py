"""BT.601 YCbCr as MATLAB's ``rgb2ycbcr`` defines it (studio swing: Y in [16, 235], Cb and Cr in
[16, 240] on the 0-255 scale), the colour space of the super-resolution literature: its PSNR and
SSIM are measured on this Y, and SRCNN (Dong et al. 2016, Sec. 4) and VDSR (Kim et al. 2016)
super-resolve this Y alone, with Cb and Cr upscaled bicubically.

Tensors are (..., 3, H, W) RGB or YCbCr in [0, 1] (the 0-255 values divided by 255)."""

import torch
from torch import Tensor

#: Rows Y, Cb, Cr: the weights of R, G, B in [0, 1], giving values on the 0-255 scale.
RGB_TO_YCBCR = ((65.481, 128.553, 24.966), (-37.797, -74.203, 112.0), (112.0, -93.786, -18.214))
YCBCR_OFFSET = (16.0, 128.0, 128.0)  # on the 0-255 scale


def _matrix(like: Tensor) -> Tensor:
    return torch.tensor(RGB_TO_YCBCR, dtype=torch.float64).div(255.0).to(device=like.device, dtype=like.dtype)


def _offset(like: Tensor) -> Tensor:
    return torch.tensor(YCBCR_OFFSET, dtype=like.dtype, device=like.device).div(255.0).view(3, 1, 1)


def rgb_to_ycbcr(rgb: Tensor) -> Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> YCbCr in [0, 1] (Y in [16/255, 235/255])."""
    return torch.einsum("ck,...khw->...chw", _matrix(rgb), rgb) + _offset(rgb)


def ycbcr_to_rgb(ycbcr: Tensor) -> Tensor:
    """The inverse of :func:`rgb_to_ycbcr` (not clamped: an SR luma may leave the RGB cube)."""
    inverse = torch.linalg.inv(torch.tensor(RGB_TO_YCBCR, dtype=torch.float64).div(255.0)).to(device=ycbcr.device, dtype=ycbcr.dtype)
    return torch.einsum("ck,...khw->...chw", inverse, ycbcr - _offset(ycbcr))


def rgb_to_luma(rgb: Tensor) -> Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> (..., 1, H, W) BT.601 Y in [16/255, 235/255]."""
    return rgb_to_ycbcr(rgb)[..., :1, :, :]
