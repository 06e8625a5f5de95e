"""Model shapes at x2/x3/x4 and parameter counts worked out by hand from the papers' architectures."""

import pytest
import torch

from srbench.errors import SrbenchError
from srbench.models import MODELS, SRCNN, VDSR, Discriminator, SRResNet, build_model, count_parameters, load_model, save_model


def conv(in_channels: int, out_channels: int, kernel: int) -> int:
    return in_channels * out_channels * kernel * kernel + out_channels


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", sorted(MODELS))
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


def test_vdsr_starts_close_to_bicubic_and_learns_the_residual() -> None:
    model = VDSR(scale=2, depth=3, num_filters=8)
    for module in model.residual:
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.zeros_(module.weight)
    lr = torch.rand(1, 3, 12, 12)
    from srbench.degradation import imresize_tensor

    assert torch.allclose(model(lr), imresize_tensor(lr, 2))


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


def test_weights_round_trip_with_weights_only(tmp_path) -> None:
    model = build_model("vdsr", 3, {"depth": 3, "num_filters": 4})
    path = tmp_path / "vdsr.pt"
    save_model(path, model, "vdsr", 3, {"depth": 3, "num_filters": 4})
    payload = torch.load(path, weights_only=True)
    assert payload["name"] == "vdsr" and payload["scale"] == 3
    loaded, meta = load_model(path)
    assert meta == {"name": "vdsr", "scale": 3, "arch": {"depth": 3, "num_filters": 4}}
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_missing_or_foreign_weights_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(SrbenchError, match="model weights not found"):
        load_model(tmp_path / "nope.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"something": torch.zeros(1)}, foreign)
    with pytest.raises(SrbenchError, match="not a srbench model file"):
        load_model(foreign)
