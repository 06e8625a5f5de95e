"""Published checkpoints of other architectures, run with srbench's protocol and metrics
(`srbench evaluate NAME --weights FILE`, docs/extending.md "Evaluate a published checkpoint").

The architecture and scale are detected from the weights alone by spandrel (chaiNNer-org/spandrel,
MIT): RCAN, SwinIR, ESRGAN/RRDB, Real-ESRGAN, HAT, SPAN, DAT and the many more it knows, plus EDSR
in its authors' layout (:mod:`srbench.external.edsr`), which spandrel lacks and srbench adds.
Only tensors are read, as for srbench's own files: ``torch.load(weights_only=True)`` or
safetensors. spandrel's own file loader is not used (it would run a ``.pt`` file as TorchScript).
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from srbench.errors import SrbenchError, error_reason
from srbench.external.edsr import EDSR
from srbench.models import first_non_finite

if TYPE_CHECKING:
    from spandrel import ArchRegistry, ImageModelDescriptor

#: The file types read: PyTorch's (``.pth``, ``.pt``, ``.ckpt``) and safetensors.
SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")


@functools.cache
def _registry() -> ArchRegistry:
    """spandrel's architectures with EDSR (the authors' layout) detected first."""
    from spandrel import MAIN_REGISTRY, ArchRegistry, Architecture, ArchSupport, ImageModelDescriptor
    from spandrel.util import KeyCondition, get_pixelshuffle_params, get_seq_len

    class EDSRArch(Architecture[EDSR]):
        def __init__(self) -> None:
            keys = ("sub_mean.weight", "add_mean.weight", "head.0.weight", "body.0.body.0.weight", "body.0.body.2.weight", "tail.1.weight")
            super().__init__(id="EDSR", name="EDSR", detect=KeyCondition.has_all(*keys))

        def load(self, state_dict: dict[str, Any]) -> ImageModelDescriptor[EDSR]:
            n_feats = state_dict["head.0.weight"].shape[0]
            n_resblocks = get_seq_len(state_dict, "body") - 1
            scale, _ = get_pixelshuffle_params(state_dict, "tail.0")
            res_scale = 0.1 if n_feats == 256 else 1.0  # not in the weights: the authors' EDSR (256 features) scales by 0.1, their baseline by 1
            model = EDSR(scale=scale, n_resblocks=n_resblocks, n_feats=n_feats, res_scale=res_scale)
            return ImageModelDescriptor(
                model, state_dict, architecture=self, purpose="SR", tags=[f"{n_feats}nf", f"{n_resblocks}nb"],
                supports_half=True, supports_bfloat16=True, scale=scale, input_channels=3, output_channels=3,
            )

    registry = ArchRegistry()
    # ignore_duplicates: should spandrel come to know an "EDSR" too, this one (the authors' layout) is kept
    registry.add(ArchSupport.from_architecture(EDSRArch()), *MAIN_REGISTRY.architectures(), ignore_duplicates=True)
    return registry


class CheckpointModel(nn.Module):
    """A detected checkpoint as srbench runs a model: RGB in [0, 1] in and out, the input padded
    to what the architecture needs (e.g. SwinIR's window multiple) and the padding cut off after.
    The input is copied first: some architectures scale it in place (spandrel's RCAN: ``x *= 255``)."""

    def __init__(self, descriptor: ImageModelDescriptor) -> None:
        super().__init__()
        self.network = descriptor.model
        self.descriptor = descriptor
        self.scale = descriptor.scale

    def forward(self, lr: Tensor) -> Tensor:
        return self.descriptor(lr.clone())


def _read_tensors(path: Path) -> dict[str, Any]:
    """The tensors in ``path``, read without running any code the file holds."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise SrbenchError(f"{path}: holds objects that weights-only loading refuses (only plain tensors are read)") from error
    except Exception as error:  # not a PyTorch file, a damaged one, or safetensors' own error type
        reason = error_reason(error)
        raise SrbenchError(f"{path}: not a checkpoint ({reason})") from error
    if not isinstance(state, dict):
        raise SrbenchError(f"{path}: not a checkpoint (holds a {type(state).__name__}, not a mapping of tensors)")
    return state


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The model in the published checkpoint ``path`` (:data:`SUFFIXES`), in eval mode on
    ``device``, and what was detected: ``architecture``, ``scale``, ``tags`` (spandrel's, e.g.
    ``64nf``) and ``parameters``. An unknown architecture, a model that is not RGB
    super-resolution or weights that do not load are one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SrbenchError(f"{path}: checkpoint not found")
    if path.suffix.lower() not in SUFFIXES:
        raise SrbenchError(f"{path}: unknown checkpoint type {path.suffix!r} (expected one of {', '.join(SUFFIXES)})")
    state = _read_tensors(path)
    from spandrel import ImageModelDescriptor, UnsupportedModelError

    try:
        descriptor = _registry().load(state)
    except UnsupportedModelError as error:
        hint = " (a srbench model file: evaluate it by its model name)" if {"name", "arch", "state_dict"} <= set(state) else ""
        raise SrbenchError(f"{path}: no known architecture matches these weights{hint}") from error
    except (RuntimeError, KeyError, ValueError, IndexError, AssertionError, TypeError, AttributeError) as error:  # detected, then the values do not fit
        reason = error_reason(error)
        raise SrbenchError(f"{path}: the weights do not load into the detected architecture ({reason})") from error
    name = descriptor.architecture.name
    if not isinstance(descriptor, ImageModelDescriptor) or descriptor.purpose != "SR":
        raise SrbenchError(f"{path}: {name} for {descriptor.purpose}, not single-image super-resolution")
    if (descriptor.input_channels, descriptor.output_channels) != (3, 3):
        raise SrbenchError(f"{path}: {name} with {descriptor.input_channels} input and {descriptor.output_channels} output channels: srbench evaluates RGB models")
    if broken := first_non_finite(descriptor.model.state_dict()):
        raise SrbenchError(f"{path}: {broken} holds NaN or infinite weights (a damaged checkpoint)")
    model = CheckpointModel(descriptor).to(device).eval()
    parameters = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)  # as for srbench's models: EDSR's fixed mean shifts not counted
    return model, {"architecture": name, "scale": descriptor.scale, "tags": list(descriptor.tags), "parameters": parameters}
