"""The VGG content loss and the adversarial loss."""

import math

import pytest
import torch

from srbench.errors import SrbenchError
from srbench.losses import VGGContentLoss, adversarial_loss


def test_content_loss_is_zero_for_identical_images_and_grows_with_difference() -> None:
    loss = VGGContentLoss("22", "random")
    hr = torch.rand(2, 3, 24, 24)
    assert loss(hr, hr).item() == 0.0
    small, large = loss(hr + 0.01, hr).item(), loss(hr + 0.2, hr).item()
    assert 0 < small < large


def test_content_loss_is_deterministic_for_a_seed() -> None:
    a, b = VGGContentLoss("22", "random", seed=1), VGGContentLoss("22", "random", seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_imagenet_weights_that_cannot_be_loaded_fail_clearly(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached file
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # and no way out, even on a networked machine
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with pytest.raises(SrbenchError, match="vgg_weights=imagenet: could not load"):
        VGGContentLoss("54", "imagenet")


def test_bad_layer_and_weights_names() -> None:
    with pytest.raises(SrbenchError, match="vgg_layer '33'"):
        VGGContentLoss("33", "random")
    with pytest.raises(SrbenchError, match="vgg_weights 'pretty'"):
        VGGContentLoss("22", "pretty")


def test_adversarial_loss_is_binary_cross_entropy() -> None:
    logits = torch.zeros(4)
    assert math.isclose(adversarial_loss(logits, True).item(), math.log(2), rel_tol=1e-6)
    assert adversarial_loss(torch.full((4,), 10.0), True).item() < 1e-4
    assert adversarial_loss(torch.full((4,), 10.0), False).item() > 9
