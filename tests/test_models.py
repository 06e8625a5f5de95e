"""Model shapes at x2/x3/x4 and parameter counts worked out by hand from the papers' architectures."""

import errno
import inspect
import os
import shlex
from pathlib import Path

import pytest
import torch
import yaml

from srbench.errors import SrbenchError
from srbench.models import (
    LumaSR,
    SRCNN,
    VDSR,
    Discriminator,
    SRResNet,
    build_model,
    check_arch,
    count_parameters,
    load_model,
    model_spec,
    model_specs,
    save_model,
)
from srbench.names import model_names

REPO = Path(__file__).resolve().parents[1]


def conv(in_channels: int, out_channels: int, kernel: int) -> int:
    return in_channels * out_channels * kernel * kernel + out_channels


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", model_names())
def test_output_is_scale_times_input(name: str, scale: int) -> None:
    arch = {"num_blocks": 2} if name == "srgan" else {"depth": 4} if name == "vdsr" else {}
    model = build_model(name, scale, arch).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 10, 13))
    assert out.shape == (2, 3, 10 * scale, 13 * scale)


def test_srcnn_955_parameter_count() -> None:
    expected = conv(3, 64, 9) + conv(64, 32, 5) + conv(32, 3, 5)
    assert expected == 69_251
    assert count_parameters(SRCNN(scale=2)) == expected


def test_vdsr_parameter_count() -> None:
    expected = conv(3, 64, 3) + 18 * conv(64, 64, 3) + conv(64, 3, 3)
    assert expected == 668_227
    assert count_parameters(VDSR(scale=3)) == expected


@pytest.mark.parametrize("scale, upsample", [(2, conv(64, 256, 3) + 64), (3, conv(64, 576, 3) + 64), (4, 2 * (conv(64, 256, 3) + 64))])
def test_srresnet_parameter_count(scale: int, upsample: int) -> None:
    head = conv(3, 64, 9) + 64  # conv + PReLU slopes
    block = 2 * conv(64, 64, 3) + 2 * 128 + 64  # two convs, two BN (weight, bias), PReLU
    trunk_end = conv(64, 64, 3) + 128
    tail = conv(64, 3, 9)
    expected = head + 16 * block + trunk_end + upsample + tail
    assert count_parameters(SRResNet(scale=scale)) == expected
    if scale == 4:
        assert expected == 1_550_659  # the figure usually quoted for SRResNet


def test_srresnet_zero_init_residual_starts_every_block_as_the_identity() -> None:
    model = SRResNet(scale=2, num_features=8, num_blocks=3, zero_init_residual=True)
    features = torch.randn(2, 8, 6, 6)
    for block in model.residual_blocks:
        assert torch.equal(block(features), features)
    plain = SRResNet(scale=2, num_features=8, num_blocks=3)
    assert not torch.equal(plain.residual_blocks[0](features), features)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_srresnet_with_a_bicubic_skip_starts_as_bicubic_and_learns_the_residual(scale: int) -> None:
    from srbench.degradation import imresize_tensor

    torch.manual_seed(0)
    model = SRResNet(scale=scale, num_features=8, num_blocks=2, bicubic_skip=True).eval()
    lr = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        assert torch.equal(model(lr), imresize_tensor(lr, scale))
    model.train()
    loss = (model(lr) - torch.rand(1, 3, 10 * scale, 12 * scale)).square().mean()
    loss.backward()
    assert model.tail.weight.grad.abs().sum() > 0  # the residual's last layer learns from the first step


def test_vdsr_starts_close_to_bicubic_and_learns_the_residual() -> None:
    model = VDSR(scale=2, depth=3, num_filters=8)
    for module in model.residual:
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.zeros_(module.weight)
    lr = torch.rand(1, 3, 12, 12)
    from srbench.degradation import imresize_tensor

    assert torch.allclose(model(lr), imresize_tensor(lr, 2))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_a_mean_free_vdsr_returns_a_flat_field_unchanged_where_the_plain_one_shifts_it(scale: int) -> None:
    torch.manual_seed(0)
    plain = VDSR(scale=scale, num_channels=1, depth=4, num_filters=8)
    for module in plain.residual:
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.uniform_(module.bias, 0.0, 0.05)  # the offsets a trained network's biases make
    mean_free = VDSR(scale=scale, num_channels=1, depth=4, num_filters=8, mean_free_residual=True)
    mean_free.load_state_dict(plain.state_dict())
    flat = torch.full((1, 1, 16, 16), 0.6)
    inner = slice(4 + 2 * scale + 1, -(4 + 2 * scale + 1))  # beyond the 4 layers' reach and the window's half-width
    with torch.no_grad():
        shifted, kept = (model(flat)[..., inner, inner] for model in (plain, mean_free))
    assert (shifted - 0.6).abs().min() > 1e-3
    assert torch.allclose(kept, torch.full_like(kept, 0.6), atol=1e-6)


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_keeps_local_means_so_the_true_residual_has_almost_none(scale: int) -> None:
    """The premise of ``mean_free_residual``: HR - bicubic(LR) of real photographs has a local mean
    (over 4 x scale + 1 px) of a fraction of a grey level, a small part of the residual itself."""
    from skimage import data

    from srbench.colour import rgb_to_luma
    from srbench.degradation import degrade, imresize_tensor, modcrop
    from srbench.metrics import uint8_to_tensor
    from srbench.models.vdsr import local_mean

    for photo in (data.astronaut(), data.coffee(), data.chelsea()):
        hr = modcrop(photo, scale)
        residual = rgb_to_luma(uint8_to_tensor(hr)) - imresize_tensor(rgb_to_luma(uint8_to_tensor(degrade(hr, scale))), scale)
        mean_rms, residual_rms = (float((values * 255).square().mean().sqrt()) for values in (local_mean(residual, 4 * scale + 1), residual))
        assert mean_rms < 1.0 and residual_rms > 4 * mean_rms, (photo.shape, mean_rms, residual_rms)


@pytest.mark.parametrize("size", [96, 64])
def test_discriminator_gives_one_logit_per_image(size: int) -> None:
    discriminator = Discriminator()
    assert discriminator(torch.rand(3, 3, size, size)).shape == (3,)
    strides = [m.stride[0] for m in discriminator.features if isinstance(m, torch.nn.Conv2d)]
    widths = [m.out_channels for m in discriminator.features if isinstance(m, torch.nn.Conv2d)]
    assert strides == [1, 2, 1, 2, 1, 2, 1, 2]
    assert widths == [64, 64, 128, 128, 256, 256, 512, 512]


def test_unknown_model_and_hyperparameter_are_named() -> None:
    with pytest.raises(SrbenchError, match="unknown model 'edsr'"):
        build_model("edsr", 2, {})
    with pytest.raises(SrbenchError, match="vdsr.arch.layers"):
        build_model("vdsr", 2, {"layers": 3})
    with pytest.raises(SrbenchError, match=r"vdsr.arch.mean_free_residual = 1: expected true or false"):
        build_model("vdsr", 2, {"mean_free_residual": 1})


def test_weights_round_trip_with_weights_only(tmp_path) -> None:
    model = build_model("vdsr", 3, {"depth": 3, "num_filters": 4})
    path = tmp_path / "vdsr.pt"
    save_model(path, model, "vdsr", 3, {"depth": 3, "num_filters": 4})
    payload = torch.load(path, weights_only=True)
    assert payload["name"] == "vdsr" and payload["scale"] == 3
    loaded, meta = load_model(path)
    assert meta == {"name": "vdsr", "scale": 3, "arch": {"depth": 3, "num_filters": 4}, "channels": "rgb"}
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))  # to the bit
    assert loaded.residual[0].weight.is_contiguous(memory_format=torch.channels_last)  # NHWC: the faster layout for inference
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():  # the same network; NHWC may sum in another order
        torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=1e-6)


def test_a_luma_model_round_trips_and_a_file_from_before_luma_models_loads_as_rgb(tmp_path: Path) -> None:
    model = build_model("srcnn", 2, {"n1": 4, "n2": 2}, channels="y")
    assert isinstance(model, LumaSR) and model.network.patch_extraction.in_channels == 1
    save_model(tmp_path / "y.pt", model, "srcnn", 2, {"n1": 4, "n2": 2}, channels="y")
    loaded, meta = load_model(tmp_path / "y.pt")
    assert meta["channels"] == "y" and isinstance(loaded, LumaSR)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))  # to the bit
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():  # the same network; NHWC may sum in another order
        torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=1e-6)
    old = build_model("srcnn", 2, {"n1": 4, "n2": 2})
    torch.save({"name": "srcnn", "scale": 2, "arch": {"n1": 4, "n2": 2}, "state_dict": old.state_dict()}, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt")[1]["channels"] == "rgb"
    with pytest.raises(SrbenchError, match="weights do not match the declared architecture srcnn x2 .* on luma: network.patch_extraction.weight: missing"):  # RGB weights declared as luma
        torch.save({"name": "srcnn", "scale": 2, "arch": {"n1": 4, "n2": 2}, "channels": "y", "state_dict": old.state_dict()}, tmp_path / "bad.pt")
        load_model(tmp_path / "bad.pt")


def test_channels_are_rgb_or_y_and_the_gan_models_train_on_rgb() -> None:
    with pytest.raises(SrbenchError, match="srcnn.channels = 'ycbcr': srcnn trains on rgb or y"):
        build_model("srcnn", 2, {}, channels="ycbcr")
    with pytest.raises(SrbenchError, match=r"srgan-seed.channels = 'y': srgan-seed trains on rgb \(its discriminator judges colour images\)"):
        build_model("srgan-seed", 2, {"num_blocks": 1}, channels="y")
    for name in ("srcnn-seed", "vdsr-seed", "srresnet"):  # any other model can train on luma
        model = build_model(name, 2, {"num_blocks": 1} if name == "srresnet" else {}, channels="y").eval()
        with torch.no_grad():
            assert model(torch.rand(1, 3, 6, 6)).shape == (1, 3, 12, 12) and model(torch.rand(1, 1, 6, 6)).shape == (1, 1, 12, 12)


def test_missing_or_foreign_weights_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(SrbenchError, match="model weights not found"):
        load_model(tmp_path / "nope.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"something": torch.zeros(1)}, foreign)
    with pytest.raises(SrbenchError, match="not a srbench model file"):
        load_model(foreign)


@pytest.mark.parametrize(
    "name, arch, message",
    [
        ("srcnn", {"n1": 0}, "srcnn.arch.n1 = 0: must be >= 1"),
        ("srcnn", {"n2": True}, "srcnn.arch.n2 = True: expected an integer"),
        ("srcnn", {"f1": 9.0}, "srcnn.arch.f1 = 9.0: expected an integer"),
        ("srcnn", {"f3": 4}, "srcnn.arch.f3 = 4: must be odd"),
        ("srcnn", {"n1": 100000}, "srcnn.arch.n1 = 100000: must be <= 4096"),  # issue 22, case 10: 14 GB and no step in 2 minutes
        ("srcnn", {"f1": 101}, "srcnn.arch.f1 = 101: must be <= 63"),
        ("vdsr", {"depth": 5000}, "vdsr.arch.depth = 5000: must be <= 1024"),
        ("srresnet", {"num_blocks": 2000}, "srresnet.arch.num_blocks = 2000: must be <= 1024"),
        ("srcnn", {"num_channels": 1}, "srcnn.arch.num_channels: unknown hyperparameter"),
        ("srcnn-seed", {"f2": 0}, "srcnn-seed.arch.f2 = 0: must be >= 1"),
        ("srcnn-seed", {"upsampling": "bicubic"}, "srcnn-seed.arch.upsampling = 'bicubic': choose one of nearest, bilinear"),
        ("vdsr", {"depth": 0}, "vdsr.arch.depth = 0: must be >= 2"),
        ("vdsr", {"num_filters": -8}, "vdsr.arch.num_filters = -8: must be >= 1"),
        ("vdsr-seed", {"num_layers": 1}, "vdsr-seed.arch.num_layers = 1: must be >= 2"),
        ("srresnet", {"num_blocks": -1}, "srresnet.arch.num_blocks = -1: must be >= 0"),
        ("srresnet", {"zero_init_residual": 1}, "srresnet.arch.zero_init_residual = 1: expected true or false"),
        ("srgan-seed", {"num_features": 0}, "srgan-seed.arch.num_features = 0: must be >= 1"),
        ("srgan-seed", {"block_order": "conv-bn-elu"}, "srgan-seed.arch.block_order = 'conv-bn-elu': unknown layer 'elu'"),
        ("srgan-seed", {"block_order": "relu-bn"}, "srgan-seed.arch.block_order = 'relu-bn': needs at least one conv"),
        ("srgan-seed", {"upsample": "bicubic"}, "srgan-seed.arch.upsample = 'bicubic': choose one of subpixel, nearest"),
        ("srgan-seed", {"trunk_leaky_slope": -0.1}, "srgan-seed.arch.trunk_leaky_slope = -0.1: must be >= 0"),
        ("srgan-seed", {"output_leaky_slope": "0.3"}, "srgan-seed.arch.output_leaky_slope = '0.3': expected a finite number"),
    ],
)
def test_a_bad_hyperparameter_is_one_line_naming_model_key_and_value(name: str, arch: dict, message: str) -> None:
    with pytest.raises(SrbenchError) as error:
        build_model(name, 2, arch)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


@pytest.mark.parametrize("scale", [2.0, True, 1, 5])
def test_an_unsupported_scale_is_refused(scale) -> None:
    with pytest.raises(SrbenchError, match=rf"srcnn: scale = {scale!r}: choose one of 2, 3, 4"):
        build_model("srcnn", scale, {})


def test_every_constructor_argument_has_a_rule_and_the_profiles_pass_them() -> None:
    for name, spec in model_specs().items():
        assert set(spec.hyperparameters) == set(inspect.signature(spec.network).parameters) - {"scale", "num_channels"}, name
    for path in [REPO / "params.yaml", *sorted((REPO / "profiles").glob("*.yaml"))]:
        for name, section in yaml.safe_load(path.read_text()).items():
            if name in model_names() and "arch" in section:
                check_arch(name, section["arch"])
    assert build_model("srresnet", 2, {"num_features": 4, "num_blocks": 0})  # no residual blocks: the long skip alone


def test_a_small_file_declaring_a_huge_architecture_is_refused_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "srcnn.pt"
    small = {"n1": 4, "n2": 4, "f1": 3, "f2": 1, "f3": 3}
    state = build_model("srcnn", 2, small).state_dict()
    # The widest network the bounds allow (4096 features), declared beside a 4-feature one's weights.
    torch.save({"name": "srcnn", "scale": 2, "arch": {**small, "n1": 4096, "n2": 4096}, "state_dict": state}, path)
    with pytest.raises(SrbenchError) as error:
        load_model(path)
    assert str(error.value).startswith(f"{path}: weights do not match the declared architecture srcnn x2")
    assert str(error.value).endswith("patch_extraction.weight: shape (4, 3, 3, 3), the architecture's is (4096, 3, 3, 3)")
    # A meta model too has one Python object per layer: a layer count beyond the file's tensors is refused unbuilt.
    state = build_model("vdsr", 2, {"depth": 2, "num_filters": 1}).state_dict()
    torch.save({"name": "vdsr", "scale": 2, "arch": {"depth": 1000, "num_filters": 1}, "state_dict": state}, path)
    with pytest.raises(SrbenchError, match=r"vdsr.arch.depth = 1000: more layers than the file's 4 tensors"):
        load_model(path)
    # Tensors expanded from one stored value have the huge shapes and a tiny file (3 KB for 67 MB).
    huge = {"n1": 4096, "n2": 4096, "f1": 3, "f2": 1, "f3": 3}
    with torch.device("meta"):
        shapes = {key: value.shape for key, value in build_model("srcnn", 2, huge).state_dict().items()}
    expanded = {key: torch.zeros(1).expand(*shape) for key, shape in shapes.items()}
    torch.save({"name": "srcnn", "scale": 2, "arch": huge, "state_dict": expanded}, path)
    assert path.stat().st_size < 10_000
    with pytest.raises(SrbenchError, match=r"patch_extraction.weight: 110592 values declared, 4 bytes stored"):
        load_model(path)


class Custom:
    """A class that weights-only loading does not know."""


class RunsACommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.mark.parametrize("kind", ["custom class", "os.system", "empty", "not torch", "no state_dict", "bad arch", "missing tensor"])
def test_a_file_that_is_not_srbench_weights_is_one_line(tmp_path: Path, kind: str) -> None:
    path, marker = tmp_path / "model.pt", tmp_path / "executed"
    state = build_model("srcnn", 2, {"n1": 4, "n2": 4}).state_dict()
    payloads = {
        "custom class": {"name": "srcnn", "scale": 2, "arch": {}, "state_dict": state, "extra": Custom()},
        "os.system": {"name": "srcnn", "scale": 2, "arch": {}, "state_dict": RunsACommand(marker)},
        "no state_dict": {"name": "srcnn", "scale": 2, "arch": {}},
        "bad arch": {"name": "srcnn", "scale": 2, "arch": {"n1": 0}, "state_dict": state},
        "missing tensor": {"name": "srcnn", "scale": 2, "arch": {"n1": 4, "n2": 4}, "state_dict": dict(list(state.items())[1:])},
    }
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "not torch":
        path.write_bytes(b"hello, I am a text file\n")
    else:
        torch.save(payloads[kind], path)
    expected = {
        "custom class": "not a srbench model file (it holds objects that weights-only loading refuses)",
        "os.system": "not a srbench model file (it holds objects that weights-only loading refuses)",
        "empty": "not a srbench model file (EOFError)",
        "not torch": "not a srbench model file (",
        "no state_dict": "not a srbench model file (expected name, scale, arch, state_dict)",
        "bad arch": "srcnn.arch.n1 = 0: must be >= 1",
        "missing tensor": "weights do not match the declared architecture srcnn x2 {'n1': 4, 'n2': 4}: patch_extraction.weight: missing",
    }
    with pytest.raises(SrbenchError) as error:
        load_model(path)
    assert str(error.value).startswith(f"{path}: {expected[kind]}") and "\n" not in str(error.value)
    assert not marker.exists()  # never unpickled, never run


def test_save_model_writes_through_a_unique_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "vdsr.pt"
    (tmp_path / "vdsr.pt.tmp").mkdir()  # e.g. another writer's temporary file under the old fixed name
    model = build_model("vdsr", 2, {"depth": 2, "num_filters": 2})
    save_model(path, model, "vdsr", 2, {"depth": 2, "num_filters": 2})
    assert load_model(path)[1]["arch"] == {"depth": 2, "num_filters": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vdsr.pt", "vdsr.pt.tmp"]


def test_save_model_on_a_full_disk_names_the_file_and_leaves_nothing(full_disk: Path) -> None:
    path = full_disk / "srcnn.pt"
    model = build_model("srcnn", 2, {})
    with pytest.raises(OSError) as error:
        save_model(path, model, "srcnn", 2, {})
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(path)
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


def test_srbench_declares_its_models_through_the_entry_points_any_package_uses() -> None:
    """The seven models are the srbench distribution's own ``srbench.models`` entry points, each
    a spec of its name; the adversarial ones train on RGB, and srgan goes on from srresnet."""
    from importlib.metadata import distribution

    declared = {entry.name: entry.value for entry in distribution("srbench").entry_points if entry.group == "srbench.models"}
    assert set(declared) == {"srcnn", "srcnn-seed", "vdsr", "vdsr-seed", "srresnet", "srgan", "srgan-seed"} <= set(model_names())
    specs = model_specs()
    assert all(specs[name].name == name for name in declared)
    assert {name for name in declared if specs[name].adversarial} == {"srgan", "srgan-seed"}
    assert all(specs[name].channels == ("rgb",) for name in ("srgan", "srgan-seed"))
    assert specs["srgan"].starts_from == "srresnet" and specs["srgan"].network is specs["srresnet"].network
    assert specs["srgan"].published[("Set5", 4)] == (29.40, 0.8472) and specs["vdsr"].published[("Urban100", 2)] == (30.76, 0.9140)
    assert ("Set5", 3) not in specs["vdsr"].published and not specs["srcnn-seed"].published


def test_an_unknown_model_and_a_broken_declaration_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SrbenchError, match=r"unknown model 'edsr': choose one of srcnn, srcnn-seed, srgan, srgan-seed, srresnet, vdsr, vdsr-seed"):
        model_spec("edsr")
    dist = tmp_path / "broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[srbench.models]\nvdsr = broken:SPEC\nnothing = srbench.models.spec:CHANNELS\n"
        "gan = broken_gan:SPEC\nlate = broken:LATE\nBig = broken:BIG\n"
    )
    (tmp_path / "broken.py").write_text(
        "from srbench.models import SRCNN, VDSR\nfrom srbench.models.spec import ModelSpec\n"
        "LATE = ModelSpec(name='late', network=VDSR, hyperparameters={}, paper='-', starts_from='srcnn')\n"
        "BIG = ModelSpec(name='Big', network=SRCNN, hyperparameters={}, paper='-')\n"
    )
    (tmp_path / "broken_gan.py").write_text(  # adversarial on luma: refused when its module is imported
        "from torch import nn\nfrom srbench.models import SRCNN\nfrom srbench.models.spec import ModelSpec\n"
        "SPEC = ModelSpec(name='gan', network=SRCNN, hyperparameters={}, paper='-', discriminator=lambda size: nn.Identity(), content_losses=('mse',))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    refusals = {
        "vdsr": r"model 'vdsr' is declared twice in the srbench.models entry points: by broken \(broken:SPEC\) and by srbench",
        "nothing": r"entry point srbench.models:nothing = srbench.models.spec:CHANNELS is not a srbench.models.spec.ModelSpec",
        "gan": r"entry point srbench.models:gan = broken_gan:SPEC does not load \(ValueError: gan: an adversarial model trains on rgb alone",
        "late": r"entry point srbench.models:late = broken:LATE: starts from srcnn, so it needs srcnn's network and hyperparameters",
        "Big": r"entry point srbench.models:Big = broken:BIG: the name must be lower-case letters, digits and . _ -",
    }
    for name, message in refusals.items():
        with pytest.raises(SrbenchError, match=message):
            build_model(name, 2, {})
