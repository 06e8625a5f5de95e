"""Published checkpoints of other architectures (srbench.external, `srbench evaluate NAME
--weights FILE`): spandrel's own classes (RCAN, SwinIR, ESRGAN's RRDBNet) and srbench's EDSR in its
authors' layout, built small with random weights and saved as their state dicts, as published
checkpoints are."""

import json
import os
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from spandrel.architectures.ESRGAN import ESRGAN
from spandrel.architectures.RCAN import RCAN
from spandrel.architectures.SwinIR import SwinIR
from torch import nn

from srbench.external import load_checkpoint
from srbench.errors import SrbenchError
from srbench.models import build_model, save_model
from srbench.external.edsr import EDSR

ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {
    "EDSR": lambda scale: EDSR(scale, n_resblocks=2, n_feats=16),
    "RCAN": lambda scale: RCAN(scale=scale, n_resgroups=2, n_resblocks=2, n_feats=16, reduction=4),
    "SwinIR": lambda scale: SwinIR(img_size=16, window_size=8, embed_dim=12, depths=[2], num_heads=[2], mlp_ratio=2.0, upscale=scale, upsampler="pixelshuffle"),
    "ESRGAN": lambda scale: ESRGAN(num_filters=8, num_blocks=2, scale=scale),
}


def saved(network: nn.Module, path: Path) -> Path:
    """``network``'s state dict in ``path`` (.safetensors or PyTorch's format), as checkpoints are published."""
    torch.manual_seed(0)
    for parameter in network.parameters():  # random weights, not the constructors' (some start at zero)
        parameter.data.normal_(0, 0.05)
    if path.suffix == ".safetensors":
        save_file({key: value.contiguous() for key, value in network.state_dict().items()}, path)
    else:
        torch.save(network.state_dict(), path)
    return path


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_each_architecture_and_scale_is_detected_and_runs_as_built(architecture: str, scale: int, tmp_path: Path) -> None:
    network = ARCHITECTURES[architecture](scale).eval()
    suffix = ".safetensors" if architecture == "SwinIR" else ".pth"
    model, detected = load_checkpoint(saved(network, tmp_path / f"model{suffix}"))
    assert detected["architecture"] == architecture and detected["scale"] == scale
    assert detected["parameters"] == sum(parameter.numel() for parameter in network.parameters() if parameter.requires_grad)
    lr = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(lr), network(lr).clamp(0, 1), atol=1e-5, rtol=0)
        odd = model(lr[..., :13, :11])  # not a multiple of SwinIR's window: padded, then cut back
    assert odd.shape == (1, 3, 13 * scale, 11 * scale) and not model.training


def test_edsr_loads_the_authors_layout_and_scales_256_features_by_a_tenth(tmp_path: Path) -> None:
    """EDSR-PyTorch's keys (sub_mean, head.0, body.N.body.0/2, tail.0.0, tail.1, add_mean): the big
    EDSR (256 features) takes res_scale 0.1, which the weights do not record."""
    model, detected = load_checkpoint(saved(EDSR(3, n_resblocks=1, n_feats=256), tmp_path / "edsr_x3.pt"))
    assert detected["scale"] == 3 and detected["tags"] == ["256nf", "1nb"]
    assert model.network.body[0].res_scale == 0.1
    assert {"sub_mean.weight", "head.0.weight", "body.0.body.2.weight", "body.1.weight", "tail.0.0.weight", "tail.1.weight", "add_mean.bias"} <= set(model.network.state_dict())


def test_what_is_not_an_rgb_super_resolution_checkpoint_is_refused_in_one_line(tmp_path: Path) -> None:
    cases = {
        "random.pth": ({"a.weight": torch.zeros(3, 3)}, "no known architecture matches these weights"),
        "denoiser.pth": (ESRGAN(num_filters=8, num_blocks=1, scale=1).state_dict(), "ESRGAN for Restoration, not single-image super-resolution"),
        "grey.pth": (ESRGAN(in_nc=1, out_nc=1, num_filters=8, num_blocks=1, scale=2).state_dict(), "ESRGAN with 1 input and 1 output channels"),
        "list.pth": ([torch.zeros(1)], "not a checkpoint (holds a list"),
    }
    for name, (content, message) in cases.items():
        torch.save(content, tmp_path / name)
        with pytest.raises(SrbenchError, match="^" + re.escape(f"{tmp_path / name}: {message}")):
            load_checkpoint(tmp_path / name)
    broken = EDSR(2, n_resblocks=2, n_feats=16).state_dict()
    broken["body.1.body.0.weight"] = torch.zeros(16, 16, 5, 5)  # detected as EDSR, then a tensor does not fit
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(SrbenchError, match="broken.pth: the weights do not load into the detected architecture"):
        load_checkpoint(tmp_path / "broken.pth")
    save_model(tmp_path / "srcnn.pt", build_model("srcnn", 2, {}), "srcnn", 2, {})
    with pytest.raises(SrbenchError, match=r"srcnn.pt: no known architecture matches these weights \(a srbench model file"):
        load_checkpoint(tmp_path / "srcnn.pt")
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(SrbenchError, match=r"model.onnx: unknown checkpoint type '.onnx' \(expected one of .pth, .pt, .ckpt, .safetensors\)"):
        load_checkpoint(tmp_path / "model.onnx")
    with pytest.raises(SrbenchError, match="missing.pth: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pth")


class _Payload:
    def __reduce__(self):
        return (os.mkdir, (_Payload.target,))


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_none(tmp_path: Path) -> None:
    _Payload.target = str(tmp_path / "ran")
    with (tmp_path / "evil.pth").open("wb") as file:
        pickle.dump({"weight": _Payload()}, file)
    torch.save({"state_dict": {"weight": _Payload()}}, tmp_path / "evil_torch.pth")
    for name in ("evil.pth", "evil_torch.pth"):
        with pytest.raises(SrbenchError, match=f"{name}: (holds objects that weights-only loading refuses|not a checkpoint)"):
            load_checkpoint(tmp_path / name)
    assert not (tmp_path / "ran").exists()


def test_evaluate_a_published_checkpoint(prepared_x2: Path, tmp_path: Path, srbench_here, monkeypatch: pytest.MonkeyPatch) -> None:
    """`srbench evaluate NAME --weights FILE` writes results/external/NAME and its headline with
    what was detected; a checkpoint of another scale, a taken name or a seed are one line."""
    shutil.copy(Path(__file__).resolve().parents[1] / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    weights = saved(ARCHITECTURES["RCAN"](2), tmp_path / "rcan_x2.pth")
    status, error = srbench_here("evaluate", "rcan-x2", "--weights", str(weights), "--data", str(prepared_x2))
    assert status == 0, error
    results = tmp_path / "results" / "external" / "rcan-x2"
    evaluation = json.loads((results / "evaluation.json").read_text())
    assert evaluation["checkpoint"]["architecture"] == "RCAN" and evaluation["checkpoint"]["scale"] == 2
    assert evaluation["checkpoint"]["file"] == str(weights) and len(evaluation["checkpoint"]["sha256"]) == 64
    headline = json.loads((tmp_path / "metrics" / "eval" / "external" / "rcan-x2.json").read_text())
    metrics = json.loads((results / "metrics.json").read_text())
    assert headline == {"valid": {"psnr_y": metrics["valid"]["psnr_y"], "ssim_y": metrics["valid"]["ssim_y"]}}
    assert len(list((results / "valid" / "sr").glob("*.png"))) == 2

    x4 = saved(ARCHITECTURES["ESRGAN"](4), tmp_path / "esrgan_x4.pth")
    refusals = [
        (("rrdb", "--weights", str(x4)), "a x4 ESRGAN checkpoint; the prepared data in"),
        (("vdsr-x", "--weights", str(weights), "--seed", "1"), "--seed 1: a published checkpoint was not trained here"),
        (("bicubic", "--weights", str(weights), "--seed", "1"), "--seed 1: bicubic trains nothing"),
        (("srcnn-seed", "--weights", str(weights)), "not a srbench model file"),
        (("my/edsr", "--weights", str(weights)), "checkpoint name 'my/edsr': letters, digits"),
        (("edsr+x2", "--weights", str(weights)), "checkpoint name 'edsr+x2': letters, digits and . _ -"),
        (("edsr",), "unknown model 'edsr'"),
    ]
    for arguments, message in refusals:
        status, error = srbench_here("evaluate", *arguments, "--data", str(prepared_x2))
        assert status == 2 and message in error and len(error.strip().splitlines()) == 1, error
