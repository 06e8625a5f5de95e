"""The study's networks (Dias & Binkowski): shapes at x2/x3/x4, parameter counts by hand, the layers the Keras code fixes."""

import pytest
import torch
from torch import nn

from srbench.losses import VGGContentLoss
from srbench.models import count_parameters
from srbench.models.study import (
    SRCNNStudy,
    SRGANStudyDiscriminator,
    SRGANStudyGenerator,
    VDSRStudy,
)


def conv(in_channels: int, out_channels: int, kernel: int) -> int:
    return in_channels * out_channels * kernel * kernel + out_channels


SMALL = {
    SRCNNStudy: {},
    VDSRStudy: {"num_filters": 8, "num_layers": 4},
    SRGANStudyGenerator: {"num_features": 8, "num_blocks": 2},
}


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("cls", list(SMALL), ids=lambda cls: cls.__name__)
def test_output_is_scale_times_input(cls: type[nn.Module], scale: int) -> None:
    model = cls(scale, **SMALL[cls]).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 10, 13))
    assert out.shape == (2, 3, 10 * scale, 13 * scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_alternative_readings_keep_the_shape(scale: int) -> None:
    lr = torch.rand(1, 3, 5, 7)
    models = [
        SRCNNStudy(scale, upsampling="bilinear"),
        SRGANStudyGenerator(scale, num_features=8, num_blocks=1, block_order="conv-relu-bn-conv-prelu-bn", upsample="nearest"),
    ]
    for model in models:
        with torch.no_grad():
            assert model.eval()(lr).shape == (1, 3, 5 * scale, 7 * scale)


def test_srcnn_study_parameter_count() -> None:
    expected = conv(3, 64, 9) + conv(64, 32, 1) + conv(32, 3, 5)
    assert expected == 20_099
    assert count_parameters(SRCNNStudy(2)) == count_parameters(SRCNNStudy(4)) == expected


def test_vdsr_study_parameter_count_and_weight_layers() -> None:
    transposed = 64 * 64 * 3 * 3 + 64
    expected = conv(3, 64, 3) + 18 * conv(64, 64, 3) + transposed + conv(64, 3, 3)
    assert expected == 705_155
    model = VDSRStudy(2)
    assert count_parameters(model) == count_parameters(VDSRStudy(4)) == expected
    kinds = [type(m) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert len(kinds) == 21  # num_layers=20: 19 convs + 1 transposed + 1 output conv
    assert kinds[:19] == [nn.Conv2d] * 19 and kinds[19:] == [nn.ConvTranspose2d, nn.Conv2d]
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 20


@pytest.mark.parametrize(
    "scale, upsample, literal",
    [
        (2, conv(64, 256, 3) + 64, 2_561_923),
        (3, conv(64, 576, 3) + 64, 2_746_563),
        (4, 2 * (conv(64, 256, 3) + 64), 2_709_699),
    ],
)
def test_generator_parameter_count(scale: int, upsample: int, literal: int) -> None:
    head = conv(3, 64, 3) + 64  # conv + PReLU slopes
    block = 2 * conv(64, 64, 3) + 2 * 128 + 64  # two convs, two BN (weight, bias), PReLU; ReLU has none
    trunk_end = conv(64, 64, 3)  # LeakyReLU, no BN
    tail = conv(64, 3, 3)
    expected = head + 32 * block + trunk_end + upsample + tail
    assert expected == literal
    assert count_parameters(SRGANStudyGenerator(scale)) == expected


def test_srcnn_upsamples_by_nearest_neighbour_between_conv2_and_conv3() -> None:
    model = SRCNNStudy(3)
    children = [m for m in model.children() if not isinstance(m, nn.ReLU)]
    assert [type(m) for m in children] == [nn.Conv2d, nn.Conv2d, nn.Upsample, nn.Conv2d]
    assert model.upsample.mode == "nearest"
    seen: dict[str, torch.Tensor] = {}
    model.non_linear_mapping.register_forward_hook(lambda m, i, o: seen.update(mapped=o.clamp(min=0)))
    model.reconstruction.register_forward_hook(lambda m, i, o: seen.update(upsampled=i[0]))
    with torch.no_grad():
        model(torch.rand(1, 3, 6, 5))
    assert seen["mapped"].shape[-2:] == (6, 5)  # the first two convolutions work in LR space
    expected = seen["mapped"].repeat_interleave(3, dim=-2).repeat_interleave(3, dim=-1)
    assert torch.equal(seen["upsampled"], expected)


def test_vdsr_study_has_no_global_residual() -> None:
    model = VDSRStudy(2, num_filters=8, num_layers=3)
    nn.init.zeros_(model.output.weight)
    with torch.no_grad():
        assert torch.equal(model(torch.rand(1, 3, 6, 6)), torch.zeros(1, 3, 12, 12))


def test_generator_output_goes_through_leaky_relu_0_3() -> None:
    model = SRGANStudyGenerator(2, num_features=8, num_blocks=1)
    tail_conv, tail_activation = model.tail
    nn.init.zeros_(tail_conv.weight)
    nn.init.constant_(tail_conv.bias, -1.0)
    with torch.no_grad():
        out = model.eval()(torch.rand(1, 3, 4, 4))
    assert torch.allclose(out, torch.full_like(out, -0.3))
    assert model.trunk_end[1].negative_slope == 0.4


def test_generator_skips_inside_each_block_and_around_the_trunk() -> None:
    model = SRGANStudyGenerator(2, num_features=8, num_blocks=2).eval()
    block = model.residual_blocks[0]
    nn.init.zeros_(block.body[3].weight)
    nn.init.zeros_(block.body[3].bias)
    x = torch.rand(1, 8, 4, 4)
    with torch.no_grad():
        assert torch.equal(block(x), x)  # body gives 0: the block is the identity
    trunk_conv = model.trunk_end[0]
    nn.init.zeros_(trunk_conv.weight)
    nn.init.zeros_(trunk_conv.bias)
    lr = torch.rand(1, 3, 4, 4)
    with torch.no_grad():
        assert torch.equal(model(lr), model.tail(model.upsample(model.head(lr))))  # trunk gives 0: temp alone


def test_generator_block_order_is_selectable() -> None:
    default = SRGANStudyGenerator(2, num_features=8, num_blocks=1).residual_blocks[0].body
    assert [type(m) for m in default] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d, nn.BatchNorm2d, nn.PReLU]
    other = SRGANStudyGenerator(2, num_features=8, num_blocks=1, block_order="conv-relu-bn-conv-prelu-bn")
    body = other.residual_blocks[0].body
    assert [type(m) for m in body] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d, nn.Conv2d, nn.PReLU, nn.BatchNorm2d]
    assert body[4].weight.shape == (8,)  # PReLU shared over the spatial axes: one slope per channel
    with pytest.raises(ValueError, match="unknown layer 'elu'"):
        SRGANStudyGenerator(2, block_order="conv-bn-elu-conv-bn")


def test_discriminator_layers_as_listed_and_dense_sized_like_keras() -> None:
    discriminator = SRGANStudyDiscriminator()
    convs = [m for m in discriminator.features if isinstance(m, nn.Conv2d)]
    assert [m.stride[0] for m in convs] == [1, 2, 1, 1, 1, 1, 1]
    assert [m.out_channels for m in convs] == [32, 32, 64, 64, 128, 256, 256]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in discriminator.features) == 6
    assert {m.negative_slope for m in discriminator.modules() if isinstance(m, nn.LeakyReLU)} == {0.2}
    dense, logit = (m for m in discriminator.classifier if isinstance(m, nn.Linear))
    assert (dense.in_features, dense.out_features, logit.out_features) == (48 * 48 * 256, 32, 1)
    bns = [64, 128, 128, 256, 512, 512]
    convs_total = conv(3, 32, 3) + conv(32, 32, 3) + conv(32, 64, 3) + conv(64, 64, 3)
    convs_total += conv(64, 128, 3) + conv(128, 256, 3) + conv(256, 256, 3)
    expected = convs_total + sum(bns) + (48 * 48 * 256 * 32 + 32) + (32 + 1)
    assert expected == 19_900_705
    assert count_parameters(discriminator) == expected


@pytest.mark.parametrize("size", [16, 15])
def test_discriminator_gives_one_logit_per_image_of_its_size(size: int) -> None:
    discriminator = SRGANStudyDiscriminator(input_size=size, features=4)
    assert discriminator(torch.rand(3, 3, size, size)).shape == (3,)
    with pytest.raises(ValueError, match=f"built for {size}"):
        discriminator(torch.rand(3, 3, size + 2, size + 2))


def test_weights_start_as_keras_initialises_them() -> None:
    model = SRGANStudyGenerator(2, num_features=8, num_blocks=1)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            assert torch.count_nonzero(module.bias) == 0
        if isinstance(module, nn.PReLU):
            assert torch.count_nonzero(module.weight) == 0
        if isinstance(module, nn.BatchNorm2d):
            assert (module.eps, module.momentum) == (1e-3, 0.01)


def test_content_layer_34_is_vgg19_block3_conv4_with_its_relu() -> None:
    features = VGGContentLoss(layer="34", weights="random").features
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8  # conv1_1, conv1_2, conv2_1, conv2_2, conv3_1 .. conv3_4
    assert (convs[-1].in_channels, convs[-1].out_channels) == (256, 256)
    assert isinstance(features[-1], nn.ReLU)  # Keras' block3_conv4 includes its activation
