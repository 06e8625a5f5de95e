"""The model families, one module each, and the weight files the pipeline passes between stages."""

import inspect
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srbench.errors import SrbenchError
from srbench.models.srcnn import SRCNN
from srbench.models.srgan import Discriminator, SRResNet
from srbench.models.study import SRCNNStudy, SRGANStudyDiscriminator, SRGANStudyGenerator, VDSRStudy
from srbench.models.vdsr import VDSR

#: The trainable models by the name used on the command line and in params.yaml: the papers'
#: networks and, with ``-seed``, the study's (Dias & Binkowski). ``srresnet`` and ``srgan`` are
#: the same generator, trained with MSE and then adversarially.
MODELS: dict[str, type[nn.Module]] = {
    "srcnn": SRCNN,
    "srcnn-seed": SRCNNStudy,
    "vdsr": VDSR,
    "vdsr-seed": VDSRStudy,
    "srresnet": SRResNet,
    "srgan": SRResNet,
    "srgan-seed": SRGANStudyGenerator,
}

#: The models trained adversarially.
GAN_MODELS = ("srgan", "srgan-seed")

__all__ = [
    "MODELS",
    "GAN_MODELS",
    "SRCNN",
    "SRCNNStudy",
    "VDSR",
    "VDSRStudy",
    "SRResNet",
    "SRGANStudyGenerator",
    "Discriminator",
    "SRGANStudyDiscriminator",
    "build_model",
    "save_model",
    "load_model",
]


def build_model(name: str, scale: int, arch: dict[str, Any]) -> nn.Module:
    """Instantiate model ``name`` for ``scale`` with the architecture hyperparameters ``arch``."""
    if name not in MODELS:
        raise SrbenchError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    cls = MODELS[name]
    accepted = set(inspect.signature(cls).parameters) - {"scale"}
    unknown = sorted(set(arch) - accepted)
    if unknown:
        raise SrbenchError(f"{name}.arch.{unknown[0]}: unknown hyperparameter (accepted: {', '.join(sorted(accepted))})")
    return cls(scale=scale, **arch)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_model(path: Path, model: nn.Module, name: str, scale: int, arch: dict[str, Any]) -> None:
    """Write the weights with what is needed to rebuild the model; atomic (temporary file, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"name": name, "scale": scale, "arch": dict(arch), "state_dict": model.state_dict()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a file written by :func:`save_model` (``weights_only=True``); returns the model in eval mode and its metadata."""
    if not Path(path).is_file():
        raise SrbenchError(f"{path}: model weights not found (train the model first)")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
        model = build_model(payload["name"], payload["scale"], payload["arch"])
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, OSError) as error:
        raise SrbenchError(f"{path}: not a srbench model file ({error})") from error
    meta = {key: payload[key] for key in ("name", "scale", "arch")}
    return model.to(device).eval(), meta
