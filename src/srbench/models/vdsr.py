"""VDSR: Kim, Lee and Lee, "Accurate Image Super-Resolution Using Very Deep Convolutional
Networks", CVPR 2016 (arXiv:1511.04587).

d = 20 layers of 3 × 3 convolutions with 64 filters, each but the last followed by ReLU,
predicting the residual between the HR image and its bicubic upsampling (the global skip).
The paper works on the luminance channel: ``num_channels`` = 1 inside
:class:`srbench.models.luma.LumaSR` (``vdsr.channels: y``); 3 is an RGB variant.
Gradient clipping, the paper's other ingredient, lives in the training loop (``grad_clip``).
"""

import math

from torch import Tensor, nn

from srbench.degradation import imresize_tensor


def conv_relu_stack(in_channels: int, num_filters: int, count: int) -> list[nn.Module]:
    """``count`` 3 × 3 convolutions of ``num_filters`` filters, each followed by ReLU."""
    layers: list[nn.Module] = []
    for index in range(count):
        layers += [nn.Conv2d(in_channels if index == 0 else num_filters, num_filters, 3, padding=1), nn.ReLU(inplace=True)]
    return layers


class VDSR(nn.Module):
    """VDSR: residual learning over the bicubic-upsampled input with a plain deep CNN."""

    def __init__(self, scale: int, num_channels: int = 3, depth: int = 20, num_filters: int = 64) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"VDSR depth must be >= 2, got {depth}")
        self.scale = scale
        self.residual = nn.Sequential(
            *conv_relu_stack(num_channels, num_filters, depth - 1), nn.Conv2d(num_filters, num_channels, 3, padding=1)
        )
        for module in self.residual:
            if isinstance(module, nn.Conv2d):  # He et al. initialisation, as in the paper
                nn.init.normal_(module.weight, std=math.sqrt(2.0 / (9 * module.out_channels)))
                nn.init.zeros_(module.bias)

    def forward(self, lr: Tensor) -> Tensor:
        upsampled = imresize_tensor(lr, self.scale)
        return upsampled + self.residual(upsampled)
