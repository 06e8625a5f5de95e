"""EDSR: Lim, Son, Kim, Nah and Lee, "Enhanced Deep Residual Networks for Single Image
Super-Resolution", CVPRW 2017 (arXiv:1707.02921), laid out as the authors' EDSR-PyTorch code
lays it out, so that their published checkpoints (``edsr_baseline_x2``, ``edsr_x4``, ...) load
as they are (:mod:`srbench.external`). Not a model srbench trains: it has no ModelSpec.

The DIV2K mean subtracted (``sub_mean``), a 3 × 3 head convolution, B residual blocks
(conv–ReLU–conv, scaled by ``res_scale``, no batch normalisation) and a convolution, added to
the head's features, then sub-pixel upsampling (×2 blocks, or one ×3) and a 3 × 3 convolution
to RGB, the mean added back (``add_mean``). The baseline: B = 16, 64 features, ``res_scale`` 1;
EDSR: B = 32, 256 features, ``res_scale`` 0.1. The network works on [0, ``rgb_range``] as the
authors' does (255); it takes and returns srbench's [0, 1] images.
"""

import math

import torch
from torch import Tensor, nn

#: The RGB mean of DIV2K's training images on a 0-1 scale (EDSR-PyTorch's ``rgb_mean``).
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class MeanShift(nn.Conv2d):
    """Adds ``sign`` × the DIV2K mean (on the 0-``rgb_range`` scale): a fixed 1 × 1 convolution."""

    def __init__(self, rgb_range: float, sign: int) -> None:
        super().__init__(3, 3, kernel_size=1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * rgb_range * torch.tensor(DIV2K_RGB_MEAN))
        self.requires_grad_(False)


class ResBlock(nn.Module):
    """conv–ReLU–conv, scaled by ``res_scale``, plus the identity."""

    def __init__(self, n_feats: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(n_feats, n_feats), nn.ReLU(inplace=True), conv3x3(n_feats, n_feats))
        self.res_scale = res_scale

    def forward(self, features: Tensor) -> Tensor:
        return features + self.body(features) * self.res_scale


class Upsampler(nn.Sequential):
    """Sub-pixel convolution: log2(scale) ×2 blocks, or one ×3 block."""

    def __init__(self, scale: int, n_feats: int) -> None:
        factors = [3] if scale == 3 else [2] * int(math.log2(scale))
        layers: list[nn.Module] = []
        for factor in factors:
            layers += [conv3x3(n_feats, factor**2 * n_feats), nn.PixelShuffle(factor)]
        super().__init__(*layers)


class EDSR(nn.Module):
    """EDSR (``n_resblocks`` = 32, ``n_feats`` = 256, ``res_scale`` = 0.1) or its baseline (16, 64, 1)."""

    def __init__(self, scale: int, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0, rgb_range: float = 255) -> None:
        super().__init__()
        self.scale, self.rgb_range = scale, rgb_range
        self.sub_mean = MeanShift(rgb_range, sign=-1)
        self.head = nn.Sequential(conv3x3(3, n_feats))
        self.body = nn.Sequential(*(ResBlock(n_feats, res_scale) for _ in range(n_resblocks)), conv3x3(n_feats, n_feats))
        self.tail = nn.Sequential(Upsampler(scale, n_feats), conv3x3(n_feats, 3))
        self.add_mean = MeanShift(rgb_range, sign=1)

    def forward(self, lr: Tensor) -> Tensor:
        features = self.head(self.sub_mean(lr * self.rgb_range))
        features = features + self.body(features)
        return self.add_mean(self.tail(features)) / self.rgb_range
