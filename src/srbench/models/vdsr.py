"""VDSR: Kim, Lee and Lee, "Accurate Image Super-Resolution Using Very Deep Convolutional
Networks", CVPR 2016 (arXiv:1511.04587).

d = 20 layers of 3 × 3 convolutions with 64 filters, each but the last followed by ReLU,
predicting the residual between the HR image and its bicubic upsampling (the global skip).
The paper works on the luminance channel; here the network sees the 3 colour channels.
Gradient clipping, the paper's other ingredient, lives in the training loop (``grad_clip``).
"""

import math

from torch import Tensor, nn

from srbench.degradation import imresize_tensor


class VDSR(nn.Module):
    """VDSR: residual learning over the bicubic-upsampled input with a plain deep CNN."""

    def __init__(self, scale: int, num_channels: int = 3, depth: int = 20, num_filters: int = 64) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"VDSR depth must be >= 2, got {depth}")
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(num_channels, num_filters, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(num_filters, num_filters, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(num_filters, num_channels, 3, padding=1))
        self.residual = nn.Sequential(*layers)
        for module in self.residual:
            if isinstance(module, nn.Conv2d):  # He et al. initialisation, as in the paper
                nn.init.normal_(module.weight, std=math.sqrt(2.0 / (9 * module.out_channels)))
                nn.init.zeros_(module.bias)

    def forward(self, lr: Tensor) -> Tensor:
        upsampled = imresize_tensor(lr, self.scale)
        return upsampled + self.residual(upsampled)
