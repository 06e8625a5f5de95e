"""LPIPS, an optional perceptual metric.

LPIPS is from R. Zhang, P. Isola, A. A. Efros, E. Shechtman and O. Wang, "The Unreasonable
Effectiveness of Deep Features as a Perceptual Metric", CVPR 2018. This module wraps the authors'
``lpips`` package (v0.1 linear layers, which ship inside the package) on top of a torchvision
backbone whose ImageNet weights torchvision keeps in ``<torch.hub.get_dir()>/checkpoints``.

The metric is optional: :func:`load_lpips` returns ``(None, reason)`` when the backbone weights
are not available, so a report can say "unavailable" instead of a number.
The backbone weights are looked up in the torch hub cache first; only when they are missing is a
download tried, after a HEAD request with a timeout so that an offline machine fails in seconds.
"""

from __future__ import annotations

import logging
import os
import pickle
import urllib.request
import warnings
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from srbench.errors import SrbenchError
from srbench.metrics import uint8_to_tensor

logger = logging.getLogger(__name__)

# The ImageNet weights that lpips' backbones load (through torchvision's legacy ``pretrained=True``):
# torchvision's ``AlexNet_Weights``, ``VGG16_Weights`` and ``SqueezeNet1_1_Weights.IMAGENET1K_V1.url``,
# written out so that an offline evaluation knows LPIPS is unavailable without importing
# torchvision (about 2 s); tests/test_perceptual.py holds them against torchvision's.
BACKBONE_WEIGHTS_URLS = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "squeeze": "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
}
# Smallest image side each backbone accepts (its deepest feature map must not be empty).
_MIN_SIDE = {"alex": 31, "vgg": 16, "squeeze": 17}
_BACKBONES = ("pretrained", "random")
_PROBE_TIMEOUT_S = 10.0


class LPIPSUnavailableError(SrbenchError):
    """The backbone's ImageNet weights (or LPIPS' linear layers) cannot be loaded."""


def backbone_weights_path(net: str) -> Path:
    """Where torchvision caches the ImageNet weights of ``net``'s backbone."""
    _check_net(net)
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(BACKBONE_WEIGHTS_URLS[net]).path)


def _check_net(net: str) -> None:
    if net not in BACKBONE_WEIGHTS_URLS:
        raise SrbenchError(f"unknown LPIPS net {net!r}; choose one of {', '.join(BACKBONE_WEIGHTS_URLS)}")


def _ensure_backbone_weights(net: str, download: bool) -> None:
    """Make sure the backbone's weights file is cached, downloading it if allowed; raise if it cannot be."""
    path = backbone_weights_path(net)
    if path.is_file():
        return
    url = BACKBONE_WEIGHTS_URLS[net]
    missing = f"torchvision {net} ImageNet weights not found in {path.parent}"
    if not download:
        raise LPIPSUnavailableError(f"{missing} and downloads are off")
    try:
        # torch.hub's download has no timeout; this probe bounds how long an unreachable host takes.
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=_PROBE_TIMEOUT_S).close()
        logger.info("downloading %s to %s", url, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        hash_prefix = torch.hub.HASH_REGEX.search(path.name)  # torchvision names end in -<sha256 prefix>.pth
        torch.hub.download_url_to_file(url, str(path), hash_prefix.group(1) if hash_prefix else None, progress=False)
    except (OSError, RuntimeError) as error:  # URLError and timeouts are OSErrors; a bad hash is a RuntimeError
        reason = str(error).replace("\n", " ")
        raise LPIPSUnavailableError(f"{missing} and not downloadable from {url}: {reason}") from error


class LPIPS:
    """LPIPS distance between two uint8 RGB images (H, W, 3); lower is more similar.

    ``backbone="random"`` uses a randomly initialised backbone under the real linear layers. It
    exists only to test the computation offline: its values are NOT LPIPS and must never be reported.
    """

    def __init__(
        self,
        net: str = "alex",
        device: torch.device | str = "cpu",
        backbone: str = "pretrained",
        download: bool = True,
    ) -> None:
        _check_net(net)
        if backbone not in _BACKBONES:
            raise SrbenchError(f"unknown LPIPS backbone {backbone!r}; choose one of {', '.join(_BACKBONES)}")
        if backbone == "pretrained":
            _ensure_backbone_weights(net, download)
        import lpips  # imported here, once the weights are known to be there: it loads torchvision (about 2 s)

        self.net = net
        self.device = torch.device(device)
        with warnings.catch_warnings():
            # lpips builds its backbone with torchvision's deprecated ``pretrained=`` argument.
            warnings.filterwarnings("ignore", message=r".*(pretrained|weights).*deprecated", category=UserWarning)
            try:
                model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=backbone == "random", verbose=False)
            except (OSError, RuntimeError, pickle.UnpicklingError) as error:  # e.g. a corrupt cached weights file
                reason = str(error).replace("\n", " ")
                raise LPIPSUnavailableError(f"LPIPS ({net}) weights could not be loaded: {reason}") from error
        self.model = model.to(self.device).eval()

    def __call__(self, sr: np.ndarray, hr: np.ndarray) -> float:
        """LPIPS distance of ``sr`` to ``hr``, both uint8 RGB images of the same shape."""
        if sr.shape != hr.shape:
            raise SrbenchError(f"LPIPS: images differ in shape: {sr.shape} vs {hr.shape}")
        if sr.ndim != 3 or sr.shape[2] != 3 or sr.dtype != np.uint8 or hr.dtype != np.uint8:
            raise SrbenchError(
                f"LPIPS expects uint8 H×W×3 RGB images, got {sr.dtype} {sr.shape} and {hr.dtype} {hr.shape}"
            )
        if min(sr.shape[:2]) < _MIN_SIDE[self.net]:
            raise SrbenchError(
                f"LPIPS ({self.net}) needs images at least {_MIN_SIDE[self.net]} px a side, got {sr.shape}"
            )
        with torch.inference_mode():
            distance = self.model(self._to_tensor(sr), self._to_tensor(hr))
        return float(distance.item())

    def _to_tensor(self, image: np.ndarray) -> torch.Tensor:
        """uint8 H×W×3 → float32 1×3×H×W in [-1, 1] on the metric's device, as LPIPS expects."""
        return uint8_to_tensor(image).to(self.device) * 2 - 1


def load_lpips(
    net: str = "alex", device: torch.device | str = "cpu", download: bool = True
) -> tuple[LPIPS | None, str | None]:
    """``(metric, None)`` when the backbone and linear weights load, ``(None, reason)`` when they cannot.

    ``reason`` is one line; an unknown ``net`` is a user error and raises :class:`SrbenchError`.
    """
    try:
        return LPIPS(net, device, download=download), None
    except LPIPSUnavailableError as error:
        logger.warning("LPIPS unavailable: %s", error)
        return None, str(error)
