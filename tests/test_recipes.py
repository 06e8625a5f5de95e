"""Params to recipes: what `srbench train` builds from a model's section of params.yaml."""

from pathlib import Path

import pytest
import torch
import yaml

from pipeline.common import ParamError, Params
from pipeline.train import build_objective, read_settings
from srbench.losses import VGGContentLoss
from srbench.models import build_model

REPO = Path(__file__).resolve().parents[1]


def srgan_settings(tmp_path: Path, **srgan: object) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["srgan"] = {key: value for key, value in params["srgan"].items() if not key.startswith("vgg_")} | srgan
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return read_settings(Params(tmp_path / "params.yaml"), "srgan")


def test_srgan_mse_is_pixel_mse_and_needs_no_vgg(tmp_path: Path) -> None:
    settings = srgan_settings(tmp_path, content_loss="mse")
    assert "vgg_weights" not in settings and "vgg_rescale" not in settings
    network = build_model("srresnet", 2, {"num_features": 8, "num_blocks": 1})
    objective = build_objective("srgan", network, settings, torch.device("cpu"))
    assert isinstance(objective.content_loss, torch.nn.MSELoss)


def test_srgan_vgg_content_loss_takes_its_layer_and_weights(tmp_path: Path) -> None:
    settings = srgan_settings(tmp_path, content_loss="vgg22", vgg_weights="random", vgg_rescale=2.0)
    network = build_model("srresnet", 2, {"num_features": 8, "num_blocks": 1})
    objective = build_objective("srgan", network, settings, torch.device("cpu"))
    assert isinstance(objective.content_loss, VGGContentLoss) and objective.content_loss.rescale == 2.0
    assert len(objective.content_loss.features) == 9  # up to the ReLU after conv2_2


def test_srgan_vgg_content_loss_needs_its_weights(tmp_path: Path) -> None:
    with pytest.raises(ParamError, match="srgan.vgg_weights"):
        srgan_settings(tmp_path, content_loss="vgg54")
