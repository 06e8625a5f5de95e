"""ESPCN: Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network", CVPR 2016 (arXiv:1609.05158).

Three convolutions on the LR image (5 × 5 with n1 filters, 3 × 3 with n2, both tanh, then 3 × 3
to scale² × C channels) and a periodic shuffle of those channels into the HR image. The paper
trains on the luminance channel (``espcn.channels: y``).
"""

from torch import Tensor, nn

from srbench.models.spec import WIDTH, ModelSpec


class ESPCN(nn.Module):
    """ESPCN (n1 = 64, n2 = 32): features at LR resolution, upsampled by the last layer alone."""

    def __init__(self, scale: int, num_channels: int = 3, n1: int = 64, n2: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(num_channels, n1, 5, padding=2), nn.Tanh(), nn.Conv2d(n1, n2, 3, padding=1), nn.Tanh()
        )
        self.sub_pixel = nn.Sequential(nn.Conv2d(n2, num_channels * scale**2, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, lr: Tensor) -> Tensor:
        return self.sub_pixel(self.features(lr))


ESPCN_SPEC = ModelSpec(
    name="espcn",
    network=ESPCN,
    hyperparameters={"n1": WIDTH, "n2": WIDTH},
    paper="Shi et al. 2016, CVPR",
)
