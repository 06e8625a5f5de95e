"""The model families, one module each, the hyperparameters each accepts, and the weight files
the pipeline passes between stages."""

import contextlib
import math
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srbench.errors import SrbenchError
from srbench.files import save_torch
from srbench.names import GAN_MODELS, SCALES
from srbench.models.luma import LumaSR
from srbench.models.srcnn import SRCNN
from srbench.models.srgan import Discriminator, SRResNet
from srbench.models.study import (
    BLOCK_LAYERS,
    GENERATOR_UPSAMPLING,
    SRCNN_UPSAMPLING,
    SRCNNStudy,
    SRGANStudyDiscriminator,
    SRGANStudyGenerator,
    VDSRStudy,
)
from srbench.models.vdsr import VDSR

#: The model classes by the names of :data:`srbench.names.MODEL_NAMES`.
MODELS: dict[str, type[nn.Module]] = {
    "srcnn": SRCNN,
    "srcnn-seed": SRCNNStudy,
    "vdsr": VDSR,
    "vdsr-seed": VDSRStudy,
    "srresnet": SRResNet,
    "srgan": SRResNet,
    "srgan-seed": SRGANStudyGenerator,
}

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
    "LumaSR",
    "CHANNELS",
    "SCALES",
    "HYPERPARAMETERS",
    "check_arch",
    "build_model",
    "save_model",
    "load_model",
]


@dataclass(frozen=True)
class Hyperparameter:
    """What an architecture hyperparameter accepts: values of ``kind`` (an int is not a bool, a
    float may be written as an int), at least ``minimum``, odd, among ``choices``, or a
    hyphen-separated list of ``parts`` including ``required``. ``layers``: the count of layers
    or blocks, each of which adds tensors to the weights."""

    kind: type
    minimum: float | None = None
    odd: bool = False
    choices: tuple[Any, ...] = ()
    parts: tuple[str, ...] = ()
    required: str = ""
    layers: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is refused, or None."""
        if self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return "expected a finite number"
        elif self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return "expected an integer"
        elif not isinstance(value, self.kind):
            return "expected true or false" if self.kind is bool else "expected a string"
        if self.choices and value not in self.choices:
            return f"choose one of {', '.join(map(str, self.choices))}"
        if self.parts:
            unknown = [part for part in value.split("-") if part not in self.parts]
            if unknown:
                return f"unknown layer {unknown[0]!r} (a hyphen-separated list of {', '.join(self.parts)})"
            if self.required not in value.split("-"):
                return f"needs at least one {self.required}"
        if self.minimum is not None and value < self.minimum:
            return f"must be >= {self.minimum}"
        if self.odd and value % 2 == 0:
            return "must be odd (a padded convolution with an even kernel changes the image size)"
        return None


#: The channel space a model is trained in (``MODEL.channels``): ``rgb``, RGB to RGB; ``y``, the
#: BT.601 luma to luma, with Cb and Cr bicubic (:class:`srbench.models.luma.LumaSR`).
CHANNELS = ("rgb", "y")
_WIDTH = Hyperparameter(int, minimum=1)
_KERNEL = Hyperparameter(int, minimum=1, odd=True)
_BLOCKS = Hyperparameter(int, minimum=0, layers=True)  # 0: no residual blocks, the trunk's skip alone
_SLOPE = Hyperparameter(float, minimum=0)  # the in-place LeakyReLU's backward refuses a negative slope

#: Every constructor argument but ``scale`` and ``num_channels`` (set by the model's channel
#: space, :data:`CHANNELS`) of each model class, and what it accepts.
HYPERPARAMETERS: dict[type[nn.Module], dict[str, Hyperparameter]] = {
    SRCNN: {"n1": _WIDTH, "n2": _WIDTH, "f1": _KERNEL, "f2": _KERNEL, "f3": _KERNEL},
    SRCNNStudy: {
        "n1": _WIDTH, "n2": _WIDTH, "f1": _KERNEL, "f2": _KERNEL, "f3": _KERNEL,
        "upsampling": Hyperparameter(str, choices=SRCNN_UPSAMPLING),
    },
    VDSR: {"depth": Hyperparameter(int, minimum=2, layers=True), "num_filters": _WIDTH, "mean_free_residual": Hyperparameter(bool)},
    VDSRStudy: {"num_filters": _WIDTH, "num_layers": Hyperparameter(int, minimum=2, layers=True)},
    SRResNet: {"num_features": _WIDTH, "num_blocks": _BLOCKS, "zero_init_residual": Hyperparameter(bool), "bicubic_skip": Hyperparameter(bool)},
    SRGANStudyGenerator: {
        "num_features": _WIDTH, "num_blocks": _BLOCKS,
        "block_order": Hyperparameter(str, parts=BLOCK_LAYERS, required="conv"),
        "upsample": Hyperparameter(str, choices=GENERATOR_UPSAMPLING),
        "trunk_leaky_slope": _SLOPE, "output_leaky_slope": _SLOPE,
    },
}


def check_arch(name: str, arch: Any) -> None:
    """Refuse, in one line naming ``NAME.arch.KEY = VALUE``, an unknown model or any
    hyperparameter of ``arch`` that model ``name`` does not accept."""
    if not isinstance(name, str) or name not in MODELS:
        raise SrbenchError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    if not isinstance(arch, dict):
        raise SrbenchError(f"{name}.arch = {arch!r}: expected a mapping of hyperparameters")
    accepted = HYPERPARAMETERS[MODELS[name]]
    unknown = sorted((key for key in arch if key not in accepted), key=str)
    if unknown:
        raise SrbenchError(f"{name}.arch.{unknown[0]}: unknown hyperparameter (accepted: {', '.join(sorted(accepted))})")
    for key, value in arch.items():
        problem = accepted[key].problem(value)
        if problem:
            raise SrbenchError(f"{name}.arch.{key} = {value!r}: {problem}")


def _check_scale(name: str, scale: Any) -> None:
    if type(scale) is not int or scale not in SCALES:  # not 2.0, not True
        raise SrbenchError(f"{name}: scale = {scale!r}: choose one of {', '.join(map(str, SCALES))}")


def _check_channels(name: str, channels: Any) -> None:
    if channels not in CHANNELS:
        raise SrbenchError(f"{name}.channels = {channels!r}: choose one of {', '.join(CHANNELS)}")
    if channels != "rgb" and name in GAN_MODELS:
        raise SrbenchError(f"{name}.channels = {channels!r}: the GAN models train on RGB (their discriminator judges colour images)")


def build_model(name: str, scale: int, arch: dict[str, Any], channels: str = "rgb") -> nn.Module:
    """Instantiate model ``name`` for ``scale`` (one of :data:`SCALES`) with the architecture
    hyperparameters ``arch``, checked first (:func:`check_arch`), in the channel space
    ``channels`` (:data:`CHANNELS`). Either way the model takes and returns RGB images; a ``y``
    model is a one-channel network inside :class:`LumaSR`."""
    check_arch(name, arch)
    _check_scale(name, scale)
    _check_channels(name, channels)
    if channels == "y":
        return LumaSR(MODELS[name](scale=scale, num_channels=1, **arch))
    return MODELS[name](scale=scale, **arch)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_model(path: Path, model: nn.Module, name: str, scale: int, arch: dict[str, Any], channels: str = "rgb") -> None:
    """Write the weights with what is needed to rebuild the model (:func:`build_model`'s
    arguments), atomically (:func:`srbench.files.save_torch`: a full disk is an ``OSError``
    naming ``path``)."""
    payload = {"name": name, "scale": scale, "arch": dict(arch), "channels": channels, "state_dict": model.state_dict()}
    save_torch(payload, path)


def _mismatch(expected: dict[str, torch.Tensor], found: dict[Any, Any]) -> str | None:
    """The first tensor where the weights ``found`` differ from the ``expected`` state_dict, or None."""
    for key, tensor in expected.items():
        value = found.get(key)
        if not isinstance(value, torch.Tensor):
            return f"{key}: missing" if value is None else f"{key}: not a tensor"
        if value.shape != tensor.shape:
            return f"{key}: shape {tuple(value.shape)}, the architecture's is {tuple(tensor.shape)}"
        if value.untyped_storage().nbytes() < value.numel() * value.element_size():  # e.g. torch.zeros(1).expand(huge)
            return f"{key}: {value.numel()} values declared, {value.untyped_storage().nbytes()} bytes stored"
    extra = next((key for key in found if key not in expected), None)
    return None if extra is None else f"{extra}: not in the architecture"


@contextlib.contextmanager
def _shapes_only() -> Iterator[None]:
    """Build modules on the meta device with ``torch.nn.init``'s initialisers skipped (as
    Hugging Face's ``no_init_weights``): only the shapes are wanted, and ``normal_`` on a meta
    tensor imports TorchDynamo, about 2 s of every command that loads a model."""
    initialisers = {name: getattr(nn.init, name) for name in dir(nn.init) if name.endswith("_") and not name.startswith("_")}
    for name in initialisers:
        setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        with torch.device("meta"):
            yield
    finally:
        for name, function in initialisers.items():
            setattr(nn.init, name, function)


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a file written by :func:`save_model` (``weights_only=True``); returns the model in
    eval mode (RGB in, RGB out, whatever its channel space), its weights channels_last (NHWC: oneDNN's
    and cuDNN's faster layout; VDSR upscales 1.5x faster on a 2-core CPU) and its metadata. The declared architecture is checked against the weights in the
    file (on the meta device, allocating nothing) before the model is built, so that a small file
    cannot make it allocate a huge one; any mismatch is one line naming the file."""
    if not Path(path).is_file():
        raise SrbenchError(f"{path}: model weights not found (train the model first)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise SrbenchError(f"{path}: not a srbench model file (it holds objects that weights-only loading refuses)") from error
    except (RuntimeError, EOFError, KeyError, ValueError) as error:  # not a PyTorch file, or a damaged one
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SrbenchError(f"{path}: not a srbench model file ({reason})") from error
    fields = ("name", "scale", "arch", "state_dict")
    if not isinstance(payload, dict) or any(key not in payload for key in fields) or not isinstance(payload["state_dict"], dict):
        raise SrbenchError(f"{path}: not a srbench model file (expected {', '.join(fields)})")
    name, scale, arch, state = (payload[key] for key in fields)
    channels = payload.get("channels", "rgb")  # files from before luma training are RGB models
    try:
        check_arch(name, arch)
        _check_scale(name, scale)
        _check_channels(name, channels)
    except SrbenchError as error:
        raise SrbenchError(f"{path}: {error}") from error
    for key, rule in HYPERPARAMETERS[MODELS[name]].items():  # a meta model too has one Python object per layer
        if rule.layers and arch.get(key, 0) > len(state):
            raise SrbenchError(f"{path}: {name}.arch.{key} = {arch[key]}: more layers than the file's {len(state)} tensors")
    with _shapes_only():
        problem = _mismatch(build_model(name, scale, arch, channels).state_dict(), state)
    if problem:
        raise SrbenchError(f"{path}: weights do not match the declared architecture {name} x{scale} {arch}{' on luma' if channels == 'y' else ''}: {problem}")
    model = build_model(name, scale, arch, channels)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:  # e.g. meta tensors, saved without their data
        raise SrbenchError(f"{path}: weights do not load ({str(error).strip().splitlines()[-1].strip()})") from error
    return model.to(device, memory_format=torch.channels_last).eval(), {"name": name, "scale": scale, "arch": arch, "channels": channels}
