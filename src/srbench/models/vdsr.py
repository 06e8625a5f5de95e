"""VDSR: Kim, Lee and Lee, "Accurate Image Super-Resolution Using Very Deep Convolutional
Networks", CVPR 2016 (arXiv:1511.04587).

d = 20 layers of 3 × 3 convolutions with 64 filters, each but the last followed by ReLU,
predicting the residual between the HR image and its bicubic upsampling (the global skip).
The paper works on the luminance channel: ``num_channels`` = 1 inside
:class:`srbench.models.luma.LumaSR` (``vdsr.channels: y``); 3 is an RGB variant.
Gradient clipping, the paper's other ingredient, lives in the training loop (``grad_clip``).

``mean_free_residual`` (not in the paper; off by default) subtracts from the predicted residual
its mean over a window of 4 x scale + 1 HR pixels, wider than the bicubic kernel's support
(4 LR pixels). Bicubic interpolation keeps an image's local means, so the true residual
HR - bicubic(LR) has almost none (RMS 0.26-0.48 grey levels at x2 on three sample photographs,
against 4.4-7.5 for the residual itself: tests/test_models.py), while a briefly trained network
adds an offset of a few tenths of a level that depends on the grey level and costs PSNR where
bicubic is already within a level, on smooth photographs. With the window a flat field comes
back unchanged.
"""

import math

from torch import Tensor, nn
from torch.nn import functional as F

from srbench.degradation import imresize_tensor
from srbench.models.spec import LAYERS, SWITCH, WIDTH, ModelSpec


def conv_relu_stack(in_channels: int, num_filters: int, count: int) -> list[nn.Module]:
    """``count`` 3 × 3 convolutions of ``num_filters`` filters, each followed by ReLU."""
    layers: list[nn.Module] = []
    for index in range(count):
        layers += [nn.Conv2d(in_channels if index == 0 else num_filters, num_filters, 3, padding=1), nn.ReLU(inplace=True)]
    return layers


class VDSR(nn.Module):
    """VDSR: residual learning over the bicubic-upsampled input with a plain deep CNN."""

    def __init__(
        self, scale: int, num_channels: int = 3, depth: int = 20, num_filters: int = 64, mean_free_residual: bool = False
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"VDSR depth must be >= 2, got {depth}")
        self.scale = scale
        self.mean_window = 4 * scale + 1 if mean_free_residual else None
        self.residual = nn.Sequential(
            *conv_relu_stack(num_channels, num_filters, depth - 1), nn.Conv2d(num_filters, num_channels, 3, padding=1)
        )
        for module in self.residual:
            if isinstance(module, nn.Conv2d):  # He et al. initialisation, as in the paper
                nn.init.normal_(module.weight, std=math.sqrt(2.0 / (9 * module.out_channels)))
                nn.init.zeros_(module.bias)

    def forward(self, lr: Tensor) -> Tensor:
        upsampled = imresize_tensor(lr, self.scale)
        residual = self.residual(upsampled)
        if self.mean_window is not None:
            residual = residual - local_mean(residual, self.mean_window)
        return upsampled + residual


def local_mean(images: Tensor, window: int) -> Tensor:
    """The mean of each pixel's ``window`` x ``window`` neighbourhood (odd ``window``), the
    borders extended by replication, so that the output has the input's size."""
    return F.avg_pool2d(F.pad(images, (window // 2,) * 4, mode="replicate"), window, stride=1)


VDSR_SPEC = ModelSpec(
    name="vdsr",
    network=VDSR,
    hyperparameters={"depth": LAYERS, "num_filters": WIDTH, "mean_free_residual": SWITCH},
    paper="Kim et al. 2016, CVPR",
    published={
        ("Set5", 2): (37.53, 0.9587), ("Set5", 4): (31.35, 0.8838), ("Set14", 2): (33.03, 0.9124), ("B100", 2): (31.90, 0.8960),
        ("Urban100", 2): (30.76, 0.9140), ("DIV2K", 2): (33.66, 0.9625), ("DIV2K", 4): (28.17, 0.8841),
    },
    published_source="EDSR paper, Table 6",
)
