"""Super-resolution of the luminance channel, as SRCNN (Dong et al. 2016, Sec. 4: "we only
consider the luminance channel (in YCbCr colour space)") and VDSR (Kim et al. 2016) were trained
and evaluated: the network maps the LR image's BT.601 Y to the SR image's Y; Cb and Cr are
upscaled bicubically; the result is an RGB image again.

A network that maps RGB to RGB must also learn colour from its training photographs, and one
that never saw a colour reproduces it wrongly: a luma network cannot tint an image.
"""

import torch
from torch import Tensor, nn

from srbench.colour import rgb_to_luma, rgb_to_ycbcr, ycbcr_to_rgb
from srbench.degradation import imresize_tensor


class LumaSR(nn.Module):
    """Wraps a one-channel network (Y to Y, ``scale`` times larger) into an RGB model.

    ``forward`` takes an RGB batch (N, 3, h, w) in [0, 1] and returns RGB (N, 3, sh, sw): Y from
    the network, Cb and Cr bicubic (MATLAB's imresize). Given a luma batch (N, 1, h, w), as the
    training batches of a luma model are, it returns the network's luma alone: that is how it
    trains, on the paper's loss over Y."""

    def __init__(self, network: nn.Module, scale: int) -> None:
        super().__init__()
        self.network = network
        self.scale = scale

    def forward(self, lr: Tensor) -> Tensor:
        if lr.shape[-3] == 1:
            return self.network(lr)
        chroma = rgb_to_ycbcr(imresize_tensor(lr, self.scale))[..., 1:, :, :]
        luma = self.network(rgb_to_luma(lr))
        return ycbcr_to_rgb(torch.cat((luma, chroma.to(luma.dtype)), dim=-3))
