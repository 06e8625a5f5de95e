"""SRCNN: Dong, Loy, He and Tang, "Image Super-Resolution Using Deep Convolutional Networks",
IEEE TPAMI 38(2), 2016 (arXiv:1501.00092).

Three convolutions on the bicubic-upsampled image: patch extraction and representation
(f1 × f1, n1 filters), non-linear mapping (f2 × f2, n2 filters) and reconstruction (f3 × f3).
``num_channels`` = 1 is the paper's network on the luminance channel (its Section 4; wrapped
in :class:`srbench.models.luma.LumaSR` for RGB images, ``srcnn.channels: y``), 3 the RGB variant
of its Section 5.4. The paper uses no padding and compares only the valid centre; here every convolution is
zero-padded to keep the image size, as common PyTorch implementations do.
"""

from torch import Tensor, nn

from srbench.degradation import imresize_tensor
from srbench.models.spec import KERNEL, WIDTH, ModelSpec


class SRCNN(nn.Module):
    """SRCNN 9-5-5 (n1=64, n2=32); takes the LR image and upsamples it bicubically first."""

    def __init__(
        self,
        scale: int,
        num_channels: int = 3,
        n1: int = 64,
        n2: int = 32,
        f1: int = 9,
        f2: int = 5,
        f3: int = 5,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.patch_extraction = nn.Conv2d(num_channels, n1, f1, padding=f1 // 2)
        self.non_linear_mapping = nn.Conv2d(n1, n2, f2, padding=f2 // 2)
        self.reconstruction = nn.Conv2d(n2, num_channels, f3, padding=f3 // 2)
        self.relu = nn.ReLU(inplace=True)
        for conv in (self.patch_extraction, self.non_linear_mapping, self.reconstruction):
            nn.init.normal_(conv.weight, std=1e-3)  # the paper's Gaussian initialisation
            nn.init.zeros_(conv.bias)

    def forward(self, lr: Tensor) -> Tensor:
        upsampled = imresize_tensor(lr, self.scale)
        features = self.relu(self.patch_extraction(upsampled))
        mapped = self.relu(self.non_linear_mapping(features))
        return self.reconstruction(mapped)


SRCNN_SPEC = ModelSpec(
    name="srcnn",
    network=SRCNN,
    hyperparameters={"n1": WIDTH, "n2": WIDTH, "f1": KERNEL, "f2": KERNEL, "f3": KERNEL},
    paper="Dong et al. 2016, TPAMI",
    published={
        ("Set5", 2): (36.66, 0.9542), ("Set5", 4): (30.48, 0.8628), ("Set14", 2): (32.42, 0.9063), ("B100", 2): (31.36, 0.8879),
        ("Urban100", 2): (29.50, 0.8946), ("DIV2K", 2): (33.05, 0.9581), ("DIV2K", 4): (27.78, 0.8753),
    },
    published_source="EDSR paper, Table 6",
)
