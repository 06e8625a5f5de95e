"""Params to recipes: what `srbench train` builds from a model's section of params.yaml."""

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.params import ParamError, Params
from pipeline.recipe import Recipe, build_objective, build_sampler, read_recipe, read_run_settings
from srbench.losses import VGGContentLoss
from srbench.models import build_model

REPO = Path(__file__).resolve().parents[1]


QUICK_RUN = read_run_settings(Params(REPO / "params.yaml"))


def srgan_recipe(tmp_path: Path, **srgan: object) -> Recipe:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["srgan"] = {key: value for key, value in params["srgan"].items() if not key.startswith("vgg_")} | srgan
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return read_recipe(Params(tmp_path / "params.yaml"), "srgan")


def test_srgan_mse_is_pixel_mse_and_needs_no_vgg(tmp_path: Path) -> None:
    recipe = srgan_recipe(tmp_path, content_loss="mse")
    assert recipe.vgg_weights is None and recipe.vgg_rescale is None and recipe.arch is None  # srgan keeps its SRResNet's
    assert recipe.as_params()["optimizer"]["lr"] == 5e-5 and "vgg_weights" not in recipe.as_params()
    network = build_model("srresnet", 2, {"num_features": 8, "num_blocks": 1})
    objective = build_objective(recipe, QUICK_RUN, network, torch.device("cpu"))
    assert isinstance(objective.content_loss, torch.nn.MSELoss)


def test_srgan_vgg_content_loss_takes_its_layer_and_weights(tmp_path: Path) -> None:
    recipe = srgan_recipe(tmp_path, content_loss="vgg22", vgg_weights="random", vgg_rescale=2.0)
    assert recipe.describe_content_loss() == "vgg22 (random weights)"
    network = build_model("srresnet", 2, {"num_features": 8, "num_blocks": 1})
    objective = build_objective(recipe, QUICK_RUN, network, torch.device("cpu"))
    assert isinstance(objective.content_loss, VGGContentLoss) and objective.content_loss.rescale == 2.0
    assert len(objective.content_loss.features) == 9  # up to the ReLU after conv2_2


def test_srgan_vgg_content_loss_needs_its_weights(tmp_path: Path) -> None:
    with pytest.raises(ParamError, match="srgan.vgg_weights"):
        srgan_recipe(tmp_path, content_loss="vgg54")


def test_channels_last_and_compile_train_the_same_model(tmp_path: Path, prepared_x2: Path) -> None:
    """The layout and torch.compile change how a step runs, not what it computes."""
    params = Params(REPO / "params.yaml")
    losses = {}
    for channels_last, compiled in ((False, False), (True, False), (True, True)):
        run = dataclasses.replace(read_run_settings(params), channels_last=channels_last, compile=compiled)
        recipe = dataclasses.replace(read_recipe(params, "srcnn"), channels="rgb", batch_size=4, patch_size=16)  # 3 channels: the layouts differ
        torch.manual_seed(0)
        network = build_model("srcnn", 2, {"n1": 8, "n2": 4, "f1": 5, "f2": 1, "f3": 3})
        objective = build_objective(recipe, run, network, torch.device("cpu"))
        sampler = build_sampler(prepared_x2, recipe, run, torch.device("cpu"))
        lr, _ = sampler.batch(1)
        assert lr.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        assert network.patch_extraction.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
        losses[channels_last, compiled] = [float(objective.step(*sampler.batch(step))["loss"]) for step in (1, 2, 3)]
    eager = losses[False, False]
    for key, values in losses.items():
        assert values == pytest.approx(eager, rel=1e-4), key


def recipe_with(tmp_path: Path, model: str, **changes: object) -> Recipe:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in changes.items():
        section, _, name = key.partition("__")
        params[section][name] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return read_recipe(Params(tmp_path / "params.yaml"), model)


def test_each_model_names_its_channel_space_and_the_quick_profile_trains_srcnn_and_vdsr_on_luma(tmp_path: Path) -> None:
    quick = Params(REPO / "params.yaml")
    assert {model: read_recipe(quick, model).channels for model in ("srcnn", "vdsr", "srresnet", "srgan", "srcnn-seed")} == {
        "srcnn": "y", "vdsr": "y", "srresnet": "rgb", "srgan": "rgb", "srcnn-seed": "rgb",
    }
    assert recipe_with(tmp_path, "srcnn", srcnn__channels="rgb").channels == "rgb"  # a user can train either way
    with pytest.raises(ParamError, match=r"srcnn.channels = 'ycbcr'.*choose one of rgb, y"):
        recipe_with(tmp_path, "srcnn", srcnn__channels="ycbcr")
    with pytest.raises(ParamError, match=r"srcnn.rgb_permutation = true: only for RGB training \(srcnn.channels is 'y'\)"):
        recipe_with(tmp_path, "srcnn", srcnn__rgb_permutation=True)
    with pytest.raises(ParamError, match=r"srresnet.channels = 'y': srgan trains on rgb \(its discriminator"):  # srgan goes on from the SRResNet
        recipe_with(tmp_path, "srgan", srresnet__channels="y", srresnet__rgb_permutation=False)
    with pytest.raises(ParamError, match=r"srgan-seed.channels = 'y': srgan-seed trains on rgb \(its discriminator"):
        recipe_with(tmp_path, "srgan-seed", **{"srgan-seed__channels": "y"})


def test_a_luma_recipe_trains_its_network_on_luma_batches(tmp_path: Path, prepared_x2: Path) -> None:
    recipe = dataclasses.replace(read_recipe(Params(REPO / "params.yaml"), "vdsr"), batch_size=2, patch_size=16)
    network = build_model("vdsr", 2, {"depth": 3, "num_filters": 4}, recipe.channels)
    objective = build_objective(recipe, QUICK_RUN, network, torch.device("cpu"))
    lr, hr = build_sampler(prepared_x2, recipe, QUICK_RUN, torch.device("cpu")).batch(1)
    assert lr.shape == (2, 1, 8, 8) and hr.shape == (2, 1, 16, 16)
    assert torch.isfinite(objective.step(lr, hr)["loss"])
