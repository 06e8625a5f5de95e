"""The trainable models, one module per family with its networks and their :class:`ModelSpec`
(found through the ``srbench.models`` entry points: :func:`model_spec`), and the weight files
the pipeline passes between stages."""

import contextlib
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srbench.errors import SrbenchError, error_reason
from srbench.files import save_torch
from srbench.models.luma import LumaSR
from srbench.models.spec import CHANNELS, CONTENT_LOSSES, Hyperparameter, ModelSpec
from srbench.models.srcnn import SRCNN
from srbench.models.srgan import Discriminator, SRResNet
from srbench.models.study import SRCNNStudy, SRGANStudyDiscriminator, SRGANStudyGenerator, VDSRStudy
from srbench.models.vdsr import VDSR
from srbench.names import MODEL_GROUP, SCALES, model_entry_point, model_names

__all__ = [
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
    "CONTENT_LOSSES",
    "SCALES",
    "Hyperparameter",
    "ModelSpec",
    "model_spec",
    "model_specs",
    "check_arch",
    "build_model",
    "save_model",
    "load_model",
    "first_non_finite",
    "training_memory",
]


#: A model's name: a file name in models/seedN/, results/seedN/, and part of MLflow metric names.
MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


def model_spec(name: str) -> ModelSpec:
    """The spec of model ``name``, loaded from its ``srbench.models`` entry point. An unknown
    name, a declaration that does not load, that is not a :class:`ModelSpec` of that name, whose
    name cannot name files (or is bicubic's), or whose ``starts_from`` is not a model of the
    same network and hyperparameters is one line naming the entry point."""
    entry = model_entry_point(name)
    where = f"model {name!r}: entry point {MODEL_GROUP}:{name} = {entry.value}"
    try:
        spec = entry.load()
    except Exception as error:  # the declaring module is another package's code: any error is its
        raise SrbenchError(f"{where} does not load ({type(error).__name__}: {error})") from error
    if not isinstance(spec, ModelSpec) or spec.name != name:
        raise SrbenchError(f"{where} is not a srbench.models.spec.ModelSpec named {name!r}")
    if not MODEL_NAME.fullmatch(name) or name == "bicubic":
        raise SrbenchError(f"{where}: the name must be lower-case letters, digits and . _ - (file names), and not bicubic")
    if spec.starts_from is not None:
        start = model_spec(spec.starts_from)
        if (start.network, dict(start.hyperparameters)) != (spec.network, dict(spec.hyperparameters)):
            raise SrbenchError(f"{where}: starts from {spec.starts_from}, so it needs {spec.starts_from}'s network and hyperparameters")
    return spec


def model_specs() -> dict[str, ModelSpec]:
    """Every declared model's spec, by name."""
    return {name: model_spec(name) for name in model_names()}


def check_arch(name: str, arch: Any) -> None:
    """Refuse, in one line naming ``NAME.arch.KEY = VALUE``, an unknown model or any
    hyperparameter of ``arch`` that model ``name`` does not accept."""
    accepted = model_spec(name).hyperparameters
    if not isinstance(arch, dict):
        raise SrbenchError(f"{name}.arch = {arch!r}: expected a mapping of hyperparameters")
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
    if problem := model_spec(name).channels_problem(channels):
        raise SrbenchError(f"{name}.channels = {channels!r}: {problem}")


def build_model(name: str, scale: int, arch: dict[str, Any], channels: str = "rgb") -> nn.Module:
    """Instantiate model ``name`` for ``scale`` (one of :data:`SCALES`) with the architecture
    hyperparameters ``arch``, checked first (:func:`check_arch`), in the channel space
    ``channels`` (:data:`CHANNELS`). Either way the model takes and returns RGB images; a ``y``
    model is a one-channel network inside :class:`LumaSR`."""
    check_arch(name, arch)
    _check_scale(name, scale)
    _check_channels(name, channels)
    network = model_spec(name).network
    if channels == "y":
        return LumaSR(network(scale=scale, num_channels=1, **arch), scale)
    return network(scale=scale, num_channels=3, **arch)


def training_memory(name: str, scale: int, arch: dict[str, Any], channels: str, batch_size: int, crop_size: int) -> int:
    """A lower bound on the bytes one training step of model ``name`` holds: fp32 weights,
    gradients and Adam's two moments (4 x the parameters), and the output of every convolution
    for a batch of ``batch_size`` crops at the LR size (``crop_size`` / ``scale`` px: no layer of
    these networks runs below it), kept for the backward pass with its gradient (2 x). The
    shapes come from the meta device: nothing is allocated or run."""
    with _shapes_only():
        model = build_model(name, scale, arch, channels)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    maps = sum(module.out_channels for module in model.modules() if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)))
    return 4 * (4 * parameters + 2 * batch_size * (crop_size // scale) ** 2 * maps)


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


def first_non_finite(state: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor of ``state`` holding a NaN or an infinity, or None
    (such weights make black or NaN images, and the receptive-field probe of tiling never ends)."""
    return next((key for key, value in state.items() if value.is_floating_point() and not value.is_meta and not torch.isfinite(value).all()), None)


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


def load_model(path: Path, device: torch.device | str = "cpu", expected: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Load a file written by :func:`save_model` (``weights_only=True``); returns the model in
    eval mode (RGB in, RGB out, whatever its channel space), its weights channels_last (NHWC: oneDNN's
    and cuDNN's faster layout; VDSR upscales 1.5x faster on a 2-core CPU) and its metadata. The declared architecture is checked against the weights in the
    file (on the meta device, allocating nothing) before the model is built, so that a small file
    cannot make it allocate a huge one; any mismatch is one line naming the file, and so is a
    file of another model than ``expected`` (when given) or a weight that is NaN or infinite."""
    if not Path(path).is_file():
        raise SrbenchError(f"{path}: model weights not found (train the model first)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise SrbenchError(f"{path}: not a srbench model file (it holds objects that weights-only loading refuses)") from error
    except (RuntimeError, EOFError, KeyError, ValueError) as error:  # not a PyTorch file, or a damaged one
        reason = error_reason(error)
        raise SrbenchError(f"{path}: not a srbench model file ({reason})") from error
    fields = ("name", "scale", "arch", "state_dict")
    if not isinstance(payload, dict) or any(key not in payload for key in fields) or not isinstance(payload["state_dict"], dict):
        raise SrbenchError(f"{path}: not a srbench model file (expected {', '.join(fields)})")
    name, scale, arch, state = (payload[key] for key in fields)
    if expected is not None and name != expected:
        raise SrbenchError(f"{path}: holds a {name} model, not {expected} (name the model the file holds)")
    channels = payload.get("channels", "rgb")  # files from before luma training are RGB models
    try:
        check_arch(name, arch)
        _check_scale(name, scale)
        _check_channels(name, channels)
    except SrbenchError as error:
        raise SrbenchError(f"{path}: {error}") from error
    for key, rule in model_spec(name).hyperparameters.items():  # a meta model too has one Python object per layer
        if rule.layers and arch.get(key, 0) > len(state):
            raise SrbenchError(f"{path}: {name}.arch.{key} = {arch[key]}: more layers than the file's {len(state)} tensors")
    with _shapes_only():
        problem = _mismatch(build_model(name, scale, arch, channels).state_dict(), state)
    if problem:
        raise SrbenchError(f"{path}: weights do not match the declared architecture {name} x{scale} {arch}{' on luma' if channels == 'y' else ''}: {problem}")
    if broken := first_non_finite(state):
        raise SrbenchError(f"{path}: {broken} holds NaN or infinite weights (a diverged or damaged model)")
    model = build_model(name, scale, arch, channels)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:  # e.g. meta tensors, saved without their data
        raise SrbenchError(f"{path}: weights do not load ({str(error).strip().splitlines()[-1].strip()})") from error
    return model.to(device, memory_format=torch.channels_last).eval(), {"name": name, "scale": scale, "arch": arch, "channels": channels}
