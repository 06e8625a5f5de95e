"""Luma super-resolution (SRCNN's and VDSR's protocol): BT.601 YCbCr as MATLAB's rgb2ycbcr, and
an RGB image in, an RGB image out, Y from the network, Cb and Cr bicubic."""

import numpy as np
import torch
from skimage import data as skdata
from torch import nn

from srbench.colour import rgb_to_luma, rgb_to_ycbcr, ycbcr_to_rgb
from srbench.degradation import imresize_tensor
from srbench.metrics import rgb_to_y, uint8_to_tensor
from srbench.models import VDSR, LumaSR


def test_ycbcr_is_matlabs_rgb2ycbcr_and_inverts_exactly() -> None:
    corners = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).view(4, 3, 1, 1)
    levels = rgb_to_ycbcr(corners).view(4, 3) * 255
    # black and white at studio swing; pure red has Cr at its top (240), pure blue Cb (240)
    expected = torch.tensor([[16.0, 128.0, 128.0], [235.0, 128.0, 128.0], [81.481, 90.203, 240.0], [40.966, 240.0, 109.786]])
    torch.testing.assert_close(levels, expected, atol=1e-3, rtol=0)
    image = uint8_to_tensor(skdata.astronaut()[:32, :32]).double()
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(image)), image, atol=1e-12, rtol=0)
    # the luma is the metric's own (srbench.metrics.rgb_to_y), on the 0-1 scale
    np.testing.assert_allclose(rgb_to_luma(image)[0, 0].numpy() * 255, rgb_to_y(skdata.astronaut()[:32, :32]), atol=1e-9)


class Doubler(nn.Module):
    """A stand-in 1-channel network: bicubic x2 of its input plus a constant 0.1."""

    scale = 2

    def forward(self, luma: torch.Tensor) -> torch.Tensor:
        assert luma.shape[1] == 1
        return imresize_tensor(luma, 2) + 0.1


def test_luma_model_takes_rgb_and_gives_rgb_with_network_luma_and_bicubic_chroma() -> None:
    lr = uint8_to_tensor(skdata.coffee()[100:124, 200:230]).double()
    model = LumaSR(Doubler(), 2)
    sr = model(lr)
    assert sr.shape == (1, 3, 48, 60)
    bicubic = rgb_to_ycbcr(imresize_tensor(lr, 2))
    got = rgb_to_ycbcr(sr)
    torch.testing.assert_close(got[:, 1:], bicubic[:, 1:], atol=1e-12, rtol=0)  # Cb, Cr: bicubic's
    torch.testing.assert_close(got[:, :1], imresize_tensor(rgb_to_luma(lr), 2) + 0.1, atol=1e-12, rtol=0)  # Y: the network's
    # a luma batch (how a luma model trains) goes through the network alone
    torch.testing.assert_close(model(rgb_to_luma(lr)), imresize_tensor(rgb_to_luma(lr), 2) + 0.1)


def test_an_untrained_luma_vdsr_keeps_the_colours_of_bicubic() -> None:
    torch.manual_seed(0)
    network = VDSR(2, num_channels=1, depth=3, num_filters=8)
    nn.init.zeros_(network.residual[-1].weight)
    nn.init.zeros_(network.residual[-1].bias)  # a zero residual: VDSR is bicubic
    lr = uint8_to_tensor(skdata.chelsea()[:20, :20])
    with torch.no_grad():
        torch.testing.assert_close(LumaSR(network, 2)(lr), imresize_tensor(lr, 2), atol=1e-5, rtol=0)
