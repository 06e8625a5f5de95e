"""Losses: pixel MSE, the VGG feature (content) loss and the adversarial loss of SRGAN."""

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srbench.errors import SrbenchError

logger = logging.getLogger(__name__)

# Index just past ReLU after conv{i}_{j} in torchvision's vgg19().features.
_VGG19_LAYER_END = {"22": 9, "34": 18, "54": 36}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGContentLoss(nn.Module):
    """MSE between VGG19 feature maps φ_{i,j} of SR and HR (Ledig et al. 2017, Eq. 5).

    ``layer="54"`` is VGG54 (after the ReLU of conv5_4), the paper's choice; ``"22"`` is VGG22;
    ``"34"`` (conv3_4 and its ReLU, Keras' ``block3_conv4``) is the study's content layer.
    Features are divided by ``rescale`` (the paper's 1/12.75) so the loss is of MSE's order.
    ``weights="imagenet"`` loads torchvision's ``VGG19_Weights.IMAGENET1K_V1`` and fails with a
    clear message when they cannot be loaded; ``"random"`` uses a fixed random initialisation.
    """

    def __init__(self, layer: str = "54", weights: str = "imagenet", rescale: float = 12.75, seed: int = 0) -> None:
        super().__init__()
        from torchvision.models import VGG19_Weights, vgg19  # imported here: seconds that only a VGG loss needs

        if layer not in _VGG19_LAYER_END:
            raise SrbenchError(f"vgg_layer {layer!r}: choose one of {', '.join(_VGG19_LAYER_END)}")
        if weights == "imagenet":
            try:
                network = vgg19(weights=VGG19_Weights.IMAGENET1K_V1)
            except Exception as error:  # no network, no cached file, corrupt file: all the same to the user
                raise SrbenchError(
                    f"vgg_weights=imagenet: could not load torchvision's VGG19 ImageNet weights ({type(error).__name__}: "
                    f"{error}); put the file in $TORCH_HOME/hub/checkpoints or set vgg_weights: random"
                ) from error
        elif weights == "random":
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                network = vgg19(weights=None)
            logger.warning("VGG content loss uses a randomly initialised VGG19 (vgg_weights=random)")
        else:
            raise SrbenchError(f"vgg_weights {weights!r}: choose imagenet or random")
        self.features = network.features[: _VGG19_LAYER_END[layer]].eval()
        for parameter in self.features.parameters():
            parameter.requires_grad_(False)
        self.rescale = rescale
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> "VGGContentLoss":
        super().train(mode)
        self.features.eval()  # the feature extractor is frozen, BN-free, dropout-free: keep it in eval
        return self

    def _phi(self, image: Tensor) -> Tensor:
        return self.features((image - self.mean) / self.std) / self.rescale

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        with torch.no_grad():
            target = self._phi(hr)
        return F.mse_loss(self._phi(sr), target)


def adversarial_loss(logits: Tensor, is_real: bool) -> Tensor:
    """Binary cross-entropy of discriminator logits against the real (1) or fake (0) label."""
    target = torch.ones_like(logits) if is_real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)
