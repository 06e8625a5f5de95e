"""The networks of Dias and Binkowski, "Achieving Image Super-Resolution using CNNs and GANs",
as written in the study's Keras code (quoted in the issue tracker): an SRCNN that upsamples
inside the network, a VDSR with a transposed convolution and no global skip, and an SRGAN
generator and discriminator. The study trains on DIV2K with MSE (SRCNN, VDSR) and, for the
GAN, with BCE plus an MSE content loss on VGG19 ``block3_conv4`` (``VGGContentLoss(layer="34")``).

Each class quotes the Keras lines it implements. Where the study leaves something open the
choice is a constructor argument and says so. Weights start as Keras initialises them
(Glorot-uniform kernels, zero biases, zero PReLU slopes) and batch normalisation uses Keras'
defaults (epsilon 1e-3, moving-average momentum 0.99, i.e. PyTorch ``momentum=0.01``).
"""

from torch import Tensor, nn

from srbench.models.spec import BLOCKS, CONTENT_LOSSES, KERNEL, LAYERS, SLOPE, WIDTH, Hyperparameter, ModelSpec
from srbench.models.srgan import SubPixelUpsample
from srbench.models.vdsr import conv_relu_stack

#: The layers a residual block's ``block_order`` names, and the two constructors' upsampling modes.
BLOCK_LAYERS = ("conv", "bn", "relu", "prelu")
SRCNN_UPSAMPLING = ("nearest", "bilinear")
GENERATOR_UPSAMPLING = ("subpixel", "nearest")


def _batch_norm(num_features: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(num_features, eps=1e-3, momentum=0.01)  # Keras' BatchNormalization defaults


def _init_like_keras(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.PReLU):
            nn.init.zeros_(module.weight)


class SRCNNStudy(nn.Module):
    """The study's SRCNN: three convolutions, upsampling in the network before the last one.

    Implements::

        x = Conv2D(64, (9, 9), activation='relu', padding='same')(input_layer)   # feature extraction
        x = Conv2D(32, (1, 1), activation='relu', padding='same')(x)             # non-linear mapping
        x = UpSampling2D(size=upscaling)(x)                                       # upsampling
        x = Conv2D(3, (5, 5), padding='same')(x)  # reconstruction, no activation

    Filter sizes 9-1-5. Unlike the paper's SRCNN, which runs on the bicubic-upsampled image,
    the first two convolutions work on the LR image. ``UpSampling2D`` interpolates by nearest
    neighbour unless told otherwise; ``upsampling="bilinear"`` is its other mode. The study trains ×2.
    """

    def __init__(
        self,
        scale: int,
        num_channels: int = 3,
        n1: int = 64,
        n2: int = 32,
        f1: int = 9,
        f2: int = 1,
        f3: int = 5,
        upsampling: str = "nearest",
    ) -> None:
        super().__init__()
        if upsampling not in SRCNN_UPSAMPLING:
            raise ValueError(f"upsampling must be one of {', '.join(SRCNN_UPSAMPLING)}, got {upsampling!r}")
        self.scale = scale
        self.feature_extraction = nn.Conv2d(num_channels, n1, f1, padding=f1 // 2)
        self.non_linear_mapping = nn.Conv2d(n1, n2, f2, padding=f2 // 2)
        align_corners = False if upsampling == "bilinear" else None  # TF2 resizes with half-pixel centres
        self.upsample = nn.Upsample(scale_factor=scale, mode=upsampling, align_corners=align_corners)
        self.reconstruction = nn.Conv2d(n2, num_channels, f3, padding=f3 // 2)
        self.relu = nn.ReLU(inplace=True)
        _init_like_keras(self)

    def forward(self, lr: Tensor) -> Tensor:
        features = self.relu(self.feature_extraction(lr))
        mapped = self.relu(self.non_linear_mapping(features))
        return self.reconstruction(self.upsample(mapped))


class VDSRStudy(nn.Module):
    """The study's VDSR: plain 3 × 3 convolutions on the LR image, a transposed convolution, one more conv.

    Implements::

        x = layers.Conv2D(num_filters, 3, padding='same', activation='relu')(input_low_resolution)
        for _ in range(num_layers - 2):
            x = layers.Conv2D(num_filters, 3, padding='same', activation='relu')(x)
        x = layers.Conv2DTranspose(num_filters, 3, strides=scale_factor, padding='same', activation='relu')(x)
        output_sr = layers.Conv2D(3, 3, padding='same')(x)  # no activation

    So ``num_layers`` = 20 gives 19 convolutions with ReLU, 1 transposed convolution with ReLU
    and 1 output convolution: 21 weight layers. There is no global residual (the canonical VDSR,
    :class:`srbench.models.vdsr.VDSR`, predicts the residual over bicubic upsampling).
    ``padding=1, output_padding=scale - 1`` makes the transposed convolution's output
    exactly ``scale`` times its input, as Keras' ``'same'`` does; TensorFlow pads asymmetrically,
    so the PyTorch grid sits one HR pixel from Keras', a shift the next 3 × 3 conv can absorb.
    """

    def __init__(self, scale: int, num_channels: int = 3, num_filters: int = 64, num_layers: int = 20) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"VDSRStudy num_layers must be >= 2, got {num_layers}")
        self.scale = scale
        self.features = nn.Sequential(*conv_relu_stack(num_channels, num_filters, num_layers - 1))
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(num_filters, num_filters, 3, stride=scale, padding=1, output_padding=scale - 1),
            nn.ReLU(inplace=True),
        )
        self.output = nn.Conv2d(num_filters, num_channels, 3, padding=1)
        _init_like_keras(self)

    def forward(self, lr: Tensor) -> Tensor:
        return self.output(self.upsample(self.features(lr)))


class StudyResidualBlock(nn.Module):
    """``residual_block``: "two convs, ReLU then PReLU, with batch normalization", plus the block's input.

    The study does not give the order; ``order`` names the layers, hyphen-separated, from
    ``conv`` (3 × 3), ``bn``, ``relu`` and ``prelu`` (one slope per channel, Keras ``shared_axes=[1, 2]``).
    """

    def __init__(self, num_features: int, order: str) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for name in order.split("-"):
            if name == "conv":
                layers.append(nn.Conv2d(num_features, num_features, 3, padding=1))
            elif name == "bn":
                layers.append(_batch_norm(num_features))
            elif name == "relu":
                layers.append(nn.ReLU(inplace=True))
            elif name == "prelu":
                layers.append(nn.PReLU(num_features))
            else:
                raise ValueError(f"block_order {order!r}: unknown layer {name!r} (choose from {', '.join(BLOCK_LAYERS)})")
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class SRGANStudyGenerator(nn.Module):
    """The study's SRGAN generator.

    Implements::

        x = layers.Conv2D(64, (3, 3), padding='same')(input)
        x = PReLU(shared_axes=[1, 2])(x)
        temp = x
        for _ in range(32):
            x = residual_block(x)   # two convs, ReLU then PReLU, with batch normalization
        x = layers.Conv2D(64, (3, 3), padding='same', activation=LeakyReLU(alpha=0.4))(x)
        x = layers.add([x, temp])
        x = upsampling_block(x)
        output = layers.Conv2D(3, (3, 3), padding='same', activation=LeakyReLU(alpha=0.3))(x)

    Two documented assumptions. ``block_order``: the default reads the comment as
    conv–BN–ReLU–conv–BN–PReLU; ``"conv-relu-bn-conv-prelu-bn"`` (activation before BN) is the
    other reading (see :class:`StudyResidualBlock`). ``upsample``: ``upsampling_block`` is not
    quoted; ``"subpixel"`` is SRGAN's (conv to 4 × features, pixel shuffle ×2, PReLU; one ×3
    block for scale 3, two ×2 blocks for scale 4), ``"nearest"`` the Keras idiom
    ``UpSampling2D`` then conv 3 × 3 and PReLU. The output keeps its LeakyReLU, as written.
    """

    def __init__(
        self,
        scale: int,
        num_channels: int = 3,
        num_features: int = 64,
        num_blocks: int = 32,
        block_order: str = "conv-bn-relu-conv-bn-prelu",
        upsample: str = "subpixel",
        trunk_leaky_slope: float = 0.4,
        output_leaky_slope: float = 0.3,
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"SRGANStudyGenerator supports scales 2, 3 and 4, got {scale}")
        if upsample not in GENERATOR_UPSAMPLING:
            raise ValueError(f"upsample must be one of {', '.join(GENERATOR_UPSAMPLING)}, got {upsample!r}")
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(num_channels, num_features, 3, padding=1), nn.PReLU(num_features))
        self.residual_blocks = nn.Sequential(*(StudyResidualBlock(num_features, block_order) for _ in range(num_blocks)))
        self.trunk_end = nn.Sequential(
            nn.Conv2d(num_features, num_features, 3, padding=1), nn.LeakyReLU(trunk_leaky_slope, inplace=True)
        )
        factors = [3] if scale == 3 else [2] * (scale // 2)
        if upsample == "subpixel":
            blocks = [SubPixelUpsample(num_features, factor) for factor in factors]
        else:
            blocks = [
                nn.Sequential(
                    nn.Upsample(scale_factor=factor, mode="nearest"),
                    nn.Conv2d(num_features, num_features, 3, padding=1),
                    nn.PReLU(num_features),
                )
                for factor in factors
            ]
        self.upsample = nn.Sequential(*blocks)
        self.tail = nn.Sequential(
            nn.Conv2d(num_features, num_channels, 3, padding=1), nn.LeakyReLU(output_leaky_slope, inplace=True)
        )
        _init_like_keras(self)

    def forward(self, lr: Tensor) -> Tensor:
        temp = self.head(lr)
        trunk = self.trunk_end(self.residual_blocks(temp))
        return self.tail(self.upsample(trunk + temp))


class SRGANStudyDiscriminator(nn.Module):
    """The study's discriminator; returns one logit per image (HR: 1, SR: 0).

    Implements::

        features = 32
        x = discriminator_block(input, features, batch_norm=False)   # conv 3x3 + LeakyReLU
        x = discriminator_block(x, features, strides=2)
        x = discriminator_block(x, features * 2)
        x = discriminator_block(x, features * 2)
        x = discriminator_block(x, features * 4)
        x = discriminator_block(x, features * 8)
        x = discriminator_block(x, features * 8)
        x = layers.Flatten()(x)
        x = layers.Dense(features)(x)
        x = layers.Dense(1)(alpha=0.2)(x)      # (sic: evidently LeakyReLU(alpha=0.2))
        output = layers.Dense(1, activation='sigmoid')(x)

    Each block is conv 3 × 3 ('same'), BN (not in the first), LeakyReLU(0.2). Literally, only the
    second block has stride 2, so the features stay at half the input size. ``Flatten`` ties
    the first dense layer to the input: ``input_size`` (the HR patch side) sizes it as Keras
    would, ``ceil(input_size / 2)² × features × 8`` inputs, and other sizes are refused.
    The sigmoid is left to the loss (``BCEWithLogitsLoss``).
    """

    def __init__(self, num_channels: int = 3, input_size: int = 96, features: int = 32, dense_features: int = 32) -> None:
        super().__init__()
        self.input_size = input_size
        widths = [features, features, features * 2, features * 2, features * 4, features * 8, features * 8]
        layers: list[nn.Module] = [nn.Conv2d(num_channels, widths[0], 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        for index in range(1, len(widths)):
            stride = 2 if index == 1 else 1
            layers += [
                nn.Conv2d(widths[index - 1], widths[index], 3, stride=stride, padding=1),
                _batch_norm(widths[index]),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        side = (input_size + 1) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(side * side * widths[-1], dense_features),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(dense_features, 1),
        )
        _init_like_keras(self)

    def forward(self, image: Tensor) -> Tensor:
        if image.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"SRGANStudyDiscriminator was built for {self.input_size}×{self.input_size} images, "
                f"got {tuple(image.shape[-2:])}"
            )
        return self.classifier(self.features(image)).squeeze(1)


STUDY = "Dias & Binkowski, the study's Keras code"

SRCNN_STUDY_SPEC = ModelSpec(
    name="srcnn-seed",
    network=SRCNNStudy,
    hyperparameters={
        "n1": WIDTH, "n2": WIDTH, "f1": KERNEL, "f2": KERNEL, "f3": KERNEL, "upsampling": Hyperparameter(str, choices=SRCNN_UPSAMPLING),
    },
    paper=STUDY,
)

VDSR_STUDY_SPEC = ModelSpec(
    name="vdsr-seed",
    network=VDSRStudy,
    hyperparameters={"num_filters": WIDTH, "num_layers": LAYERS},
    paper=STUDY,
)

SRGAN_STUDY_SPEC = ModelSpec(
    name="srgan-seed",
    network=SRGANStudyGenerator,
    hyperparameters={
        "num_features": WIDTH, "num_blocks": BLOCKS,
        "block_order": Hyperparameter(str, parts=BLOCK_LAYERS, required="conv"),
        "upsample": Hyperparameter(str, choices=GENERATOR_UPSAMPLING),
        "trunk_leaky_slope": SLOPE, "output_leaky_slope": SLOPE,
    },
    paper=STUDY,
    channels=("rgb",),
    discriminator=lambda patch_size: SRGANStudyDiscriminator(input_size=patch_size),  # its Flatten + Dense fix the crop
    content_losses=CONTENT_LOSSES,
)
