"""SRResNet and the SRGAN discriminator: Ledig et al., "Photo-Realistic Single Image
Super-Resolution Using a Generative Adversarial Network", CVPR 2017 (arXiv:1609.04802).

Generator (Figure 4, top): a 9 × 9 convolution with PReLU, B residual blocks
(conv–BN–PReLU–conv–BN plus identity), a 3 × 3 convolution with BN added to the first
features (the long skip), sub-pixel convolution blocks that upsample ×2 each (×3 in one block
for scale 3), and a final 9 × 9 convolution to the colour channels.

Discriminator (Figure 4, bottom): eight 3 × 3 convolutions with LeakyReLU (α = 0.2), BN after
all but the first, the number of filters doubling from 64 to 512 and stride 2 at every second
layer, then Dense(1024), LeakyReLU and Dense(1). Two documented departures: an adaptive
average pool to 6 × 6 before the dense layers lets any input size through (a 96 × 96 input,
the paper's, gives 6 × 6 anyway), and the final sigmoid is left to the loss
(``BCEWithLogitsLoss``) for numerical stability.
"""

from torch import Tensor, nn

from srbench.degradation import imresize_tensor
from srbench.models.spec import BLOCKS, CONTENT_LOSSES, SWITCH, WIDTH, ModelSpec


class ResidualBlock(nn.Module):
    """conv3×3 – BN – PReLU – conv3×3 – BN, plus the block's input."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(num_features, num_features, 3, padding=1),
            nn.BatchNorm2d(num_features),
            nn.PReLU(num_features),
            nn.Conv2d(num_features, num_features, 3, padding=1),
            nn.BatchNorm2d(num_features),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class SubPixelUpsample(nn.Sequential):
    """conv3×3 to factor² × features, pixel shuffle by factor, PReLU."""

    def __init__(self, num_features: int, factor: int) -> None:
        super().__init__(
            nn.Conv2d(num_features, num_features * factor**2, 3, padding=1),
            nn.PixelShuffle(factor),
            nn.PReLU(num_features),
        )


class SRResNet(nn.Module):
    """The SRGAN generator; trained with MSE alone it is the paper's SRResNet.

    ``zero_init_residual`` starts every residual block's last BN at γ = 0, so that each block
    starts as the identity (Goyal et al. 2017, §5.1; torchvision's ResNet offers the same
    switch). The paper does not give its initialisation; off, PyTorch's default is used.

    ``bicubic_skip`` adds the bicubic upsampling of the input to the output, so that the network
    learns the residual over bicubic (VDSR's global residual learning, Kim et al. 2016), with the
    last convolution starting at zero: the untrained network is bicubic. Not in the paper."""

    def __init__(
        self,
        scale: int,
        num_channels: int = 3,
        num_features: int = 64,
        num_blocks: int = 16,
        zero_init_residual: bool = False,
        bicubic_skip: bool = False,
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"SRResNet supports scales 2, 3 and 4, got {scale}")
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(num_channels, num_features, 9, padding=4), nn.PReLU(num_features))
        self.residual_blocks = nn.Sequential(*(ResidualBlock(num_features) for _ in range(num_blocks)))
        self.trunk_end = nn.Sequential(
            nn.Conv2d(num_features, num_features, 3, padding=1), nn.BatchNorm2d(num_features)
        )
        factors = [3] if scale == 3 else [2] * (scale // 2)
        self.upsample = nn.Sequential(*(SubPixelUpsample(num_features, f) for f in factors))
        self.tail = nn.Conv2d(num_features, num_channels, 9, padding=4)
        if zero_init_residual:
            for block in self.residual_blocks:
                nn.init.zeros_(block.body[-1].weight)
        self.bicubic_skip = bicubic_skip
        if bicubic_skip:
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, lr: Tensor) -> Tensor:
        features = self.head(lr)
        trunk = self.trunk_end(self.residual_blocks(features))
        sr = self.tail(self.upsample(features + trunk))
        return sr + imresize_tensor(lr, self.scale) if self.bicubic_skip else sr


class Discriminator(nn.Module):
    """VGG-style discriminator; returns one logit per image (HR: 1, SR: 0)."""

    def __init__(self, num_channels: int = 3, base_features: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(num_channels, base_features, 3, padding=1), nn.LeakyReLU(0.2, True)]
        in_features = base_features
        for index in range(1, 8):
            out_features = base_features * 2 ** (index // 2)
            stride = 2 if index % 2 == 1 else 1
            layers += [
                nn.Conv2d(in_features, out_features, 3, stride=stride, padding=1),
                nn.BatchNorm2d(out_features),
                nn.LeakyReLU(0.2, True),
            ]
            in_features = out_features
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(6)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features * 36, 1024),
            nn.LeakyReLU(0.2, True),
            nn.Linear(1024, 1),
        )

    def forward(self, image: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(image))).squeeze(1)


_GENERATOR = {"num_features": WIDTH, "num_blocks": BLOCKS, "zero_init_residual": SWITCH, "bicubic_skip": SWITCH}

SRRESNET_SPEC = ModelSpec(
    name="srresnet",
    network=SRResNet,
    hyperparameters=_GENERATOR,
    paper="Ledig et al. 2017, CVPR (SRResNet)",
    published={("Set5", 4): (32.05, 0.9019)},
    published_source="SRGAN paper, Table 2",
)

#: SRGAN: the trained SRResNet (its architecture, its channels) trained on against the discriminator.
SRGAN_SPEC = ModelSpec(
    name="srgan",
    network=SRResNet,
    hyperparameters=_GENERATOR,
    paper="Ledig et al. 2017, CVPR (SRGAN)",
    channels=("rgb",),
    discriminator=lambda patch_size: Discriminator(),  # any crop size: the adaptive pool
    content_losses=CONTENT_LOSSES,
    starts_from="srresnet",
    published={("Set5", 4): (29.40, 0.8472)},
    published_source="SRGAN paper, Table 2",
)
