"""Tests of srbench.perceptual: LPIPS is optional, and its computation is right.

The ImageNet backbone weights cannot be downloaded here, so the computation is tested with
``backbone="random"`` (random backbone, real linear layers): those values are not LPIPS.
"""

from __future__ import annotations

import os
from pathlib import Path

import lpips
import numpy as np
import pytest
import torch
from skimage import data

from srbench.errors import SrbenchError
from srbench.perceptual import BACKBONE_WEIGHTS_URLS, LPIPS, backbone_weights_path, load_lpips


@pytest.fixture(scope="module")
def random_alex() -> LPIPS:
    torch.manual_seed(0)
    return LPIPS("alex", backbone="random")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return data.astronaut()[:64, 200:264].copy()


def _add_noise(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, image.shape)
    return np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)


def test_the_backbone_urls_are_torchvisions() -> None:
    """srbench writes them out to stay offline-fast; they must be what lpips' torchvision loads."""
    import torchvision.models

    weights = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}
    assert {net: getattr(torchvision.models, name).IMAGENET1K_V1.url for net, name in weights.items()} == BACKBONE_WEIGHTS_URLS


def test_unavailable_when_downloads_are_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    metric, reason = load_lpips("vgg", download=False)
    assert metric is None
    checkpoints = tmp_path / "hub" / "checkpoints"
    assert reason == f"torchvision vgg ImageNet weights not found in {checkpoints} and downloads are off"


def test_unavailable_with_corrupt_cached_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = backbone_weights_path("alex")
    assert path.parent == tmp_path / "hub" / "checkpoints"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    metric, reason = load_lpips("alex", download=False)
    assert metric is None
    assert reason is not None and reason.startswith("LPIPS (alex) weights could not be loaded: ") and "\n" not in reason


def test_identical_images_give_zero(random_alex: LPIPS, photo: np.ndarray) -> None:
    distance = random_alex(photo, photo.copy())
    assert type(distance) is float
    assert 0.0 <= distance < 1e-6


def test_distance_grows_with_noise(random_alex: LPIPS, photo: np.ndarray) -> None:
    distances = [random_alex(_add_noise(photo, sigma, seed=1), photo) for sigma in (2.0, 10.0, 40.0)]
    assert all(type(d) is float and d > 0.0 for d in distances)
    assert distances[0] < distances[1] < distances[2]


def test_linear_layers_come_from_the_package(random_alex: LPIPS) -> None:
    path = os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", "alex.pth")
    shipped = torch.load(path, map_location="cpu", weights_only=True)
    assert len(shipped) == 5
    for k in range(5):
        loaded = getattr(random_alex.model, f"lin{k}").model[1].weight
        assert torch.equal(loaded, shipped[f"lin{k}.model.1.weight"])


def test_squeeze_backbone_runs(photo: np.ndarray) -> None:
    torch.manual_seed(0)
    metric = LPIPS("squeeze", backbone="random")
    assert metric(photo, photo) < 1e-6 < metric(_add_noise(photo, 20.0, seed=2), photo)


def test_unknown_net_raises() -> None:
    with pytest.raises(SrbenchError, match="'resnet'"):
        load_lpips("resnet")
    with pytest.raises(SrbenchError, match="'resnet'"):
        LPIPS("resnet", backbone="random")


def test_unknown_backbone_raises() -> None:
    with pytest.raises(SrbenchError, match="'imagenet'"):
        LPIPS("alex", backbone="imagenet")


def test_shape_mismatch_raises(random_alex: LPIPS, photo: np.ndarray) -> None:
    with pytest.raises(SrbenchError, match="differ in shape"):
        random_alex(photo, photo[:-1])


@pytest.mark.parametrize(
    "image",
    [np.zeros((64, 64, 3), np.float32), np.zeros((64, 64), np.uint8), np.zeros((20, 64, 3), np.uint8)],
    ids=["float", "gray", "too-small"],
)
def test_bad_images_raise(random_alex: LPIPS, image: np.ndarray) -> None:
    with pytest.raises(SrbenchError, match="LPIPS"):
        random_alex(image, image.copy())
