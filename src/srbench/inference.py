"""Running a trained model on whole images, and choosing the device."""

import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from srbench.data import ImagePair, load_pairs, read_meta
from srbench.degradation import Rounding, upscale_bicubic
from srbench.errors import SrbenchError
from srbench.metrics import sr_metrics, tensor_to_uint8, uint8_to_tensor
from srbench.progress import progress

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; an explicit device must be available."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise SrbenchError(f"device {name!r}: choose one of {', '.join(DEVICES)} (or cuda:N)")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SrbenchError(f"device {name!r}: CUDA is not available on this machine")
    if name == "mps" and not torch.backends.mps.is_available():
        raise SrbenchError("device 'mps': MPS is not available on this machine")
    return torch.device(name)


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new allocation on ``device``: CUDA's free memory, the host's MemAvailable
    (Linux) for the CPU; None where it is not known (MPS, other systems)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu" and Path("/proc/meminfo").is_file():
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def _cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def describe_machine(device: torch.device) -> dict[str, str | int]:
    """What a result depends on beyond params and code: the CPU model, PyTorch's intra-op thread
    count, the GPU (if ``device`` is one) and the PyTorch version."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    return {"cpu": _cpu_model(), "torch_threads": torch.get_num_threads(), "gpu": gpu, "torch": torch.__version__}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def input_format(model: nn.Module) -> torch.memory_format:
    """The memory format ``model``'s input should have: channels_last (NHWC) when some
    convolution weight is laid out so (:func:`srbench.models.load_model` loads them so, and a
    training with ``train.channels_last`` keeps them so), else the default NCHW."""
    for parameter in model.parameters():
        if parameter.dim() == 4 and not parameter.is_contiguous() and parameter.is_contiguous(memory_format=torch.channels_last):
            return torch.channels_last
    return torch.contiguous_format


@torch.no_grad()
def super_resolve(model: nn.Module, lr: np.ndarray, device: torch.device) -> np.ndarray:
    """Upscale one uint8 H×W×3 LR image with ``model``; returns the SR image rounded to uint8."""
    image = uint8_to_tensor(lr).to(device).contiguous(memory_format=input_format(model))
    return tensor_to_uint8(model(image).float().cpu())


Upscaler = Callable[[np.ndarray], np.ndarray]


def model_upscaler(model: nn.Module, device: torch.device) -> Upscaler:
    """An upscaler that runs ``model`` (in eval mode) on ``device``."""
    model.eval()
    return lambda lr: super_resolve(model, lr, device)


def bicubic_upscaler(scale: int, rounding: Rounding = "per_pass") -> Upscaler:
    """The bicubic baseline (MATLAB-compatible imresize, rounded to uint8 by ``rounding``)."""
    return lambda lr: upscale_bicubic(lr, scale, rounding)


def evaluate_pairs(
    upscale: Upscaler, pairs: list[ImagePair], scale: int, device: torch.device | None = None, description: str | None = "evaluate"
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray], float]:
    """Super-resolve every pair; returns per-image metrics, SR images and seconds spent upscaling.
    Progress over the images is shown as ``description`` (:func:`srbench.progress.progress`;
    None: not shown, e.g. validation inside training's own progress)."""
    per_image: dict[str, dict[str, float]] = {}
    outputs: dict[str, np.ndarray] = {}
    seconds = 0.0
    with progress(len(pairs), description or "", "image", log=logger, mode=None if description else "off") as bar:
        for pair in pairs:
            if device is not None:
                _synchronize(device)
            started = time.perf_counter()
            sr = upscale(pair.lr)
            if device is not None:
                _synchronize(device)
            seconds += time.perf_counter() - started
            if sr.shape != pair.hr.shape:
                raise SrbenchError(f"{pair.name}: SR shape {sr.shape} differs from HR shape {pair.hr.shape}")
            per_image[pair.name] = sr_metrics(sr, pair.hr, scale)
            outputs[pair.name] = sr
            bar.update()
    return per_image, outputs, seconds


def mean_metrics(per_image: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over the images."""
    keys = next(iter(per_image.values())).keys()
    return {key: float(np.mean([values[key] for values in per_image.values()])) for key in keys}


def bicubic_validation_psnr(prepared_dir: Path) -> float:
    """Bicubic's mean Y-PSNR on the prepared validation pairs, rounded as the data were."""
    meta = read_meta(prepared_dir)
    upscale = bicubic_upscaler(meta.scale, meta.bicubic_rounding)
    return mean_metrics(evaluate_pairs(upscale, load_pairs(prepared_dir / "valid"), meta.scale)[0])["psnr_y"]
