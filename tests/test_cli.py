"""The `srbench` command: help, and bad input giving one clear line and a non-zero exit."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from srbench.images import read_image, write_png

REPO = Path(__file__).resolve().parents[1]
SRBENCH = str(Path(sys.executable).parent / "srbench")


def srbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([SRBENCH, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def set_param(workdir: Path, key: str, value) -> None:
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    node = params
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("srbench: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_help_lists_every_stage(tmp_path: Path) -> None:
    result = srbench("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("download", "prepare", "train", "evaluate", "report", "upscale", "profile", "check"):
        assert command in result.stdout


@pytest.mark.parametrize(
    "key, value, command, fragments",
    [
        ("prepare.scale", 5, ["prepare"], ["prepare.scale = 5", "2, 3, 4"]),
        ("vdsr.steps", 0, ["train", "vdsr"], ["vdsr.steps = 0", ">= 1"]),
        ("srcnn.optimizer.lr", -0.1, ["train", "srcnn"], ["srcnn.optimizer.lr = -0.1", "positive"]),
        ("vdsr.optimizer.name", "rmsprop", ["train", "vdsr"], ["vdsr.optimizer.name = 'rmsprop'", "adam, sgd"]),
        ("vdsr-seed.optimizer.betas", [0.9, 0.99], ["train", "vdsr-seed"], ["vdsr-seed.optimizer.betas", "unknown setting"]),
        ("srgan-seed.content_loss", "vgg33", ["train", "srgan-seed"], ["srgan-seed.content_loss = 'vgg33'", "mse, vgg22, vgg34, vgg54"]),
        ("train.budget", 0, ["train", "srcnn"], ["train.budget = 0", "positive"]),
        ("data.benchmark_sets", ["Set6"], ["download"], ["data.benchmark_sets = ['Set6']", "Set5, Set14, B100, Urban100"]),
        ("data.checksums", "SUMS", ["download"], ["SUMS"]),
        ("evaluate.lpips", "maybe", ["evaluate", "bicubic"], ["evaluate.lpips = 'maybe'"]),
        ("data.source", "imagenet", ["download"], ["data.source = 'imagenet'"]),
        ("train.precision", "fp8", ["train", "srcnn"], ["train.precision = 'fp8'"]),
        ("train.deterministic", "yes", ["train", "srcnn"], ["train.deterministic = 'yes'"]),
        ("srcnn.loss_scale", 0, ["train", "srcnn"], ["srcnn.loss_scale = 0", "positive"]),
        ("vdsr.optimizer.schedule", "linear", ["train", "vdsr"], ["vdsr.optimizer.schedule = 'linear'", "step, cosine"]),
        ("vdsr.optimizer.warmup_steps", -1, ["train", "vdsr"], ["vdsr.optimizer.warmup_steps = -1", ">= 0"]),
        ("prepare.bicubic_rounding", "twice", ["prepare"], ["prepare.bicubic_rounding = 'twice'", "per_pass, once"]),
        ("data.valid_images", ["lena"], ["download"], ["data.valid_images", "'lena'", "astronaut"]),
        ("data.valid_images", "chelsea", ["download"], ["data.valid_images = 'chelsea'", "a list of image names"]),
        ("vdsr.optimizer.lr", 0, ["check", "vdsr"], ["vdsr.optimizer.lr = 0", "positive"]),
        # issue 9: each of these was a traceback
        ("prepare.scale", 2.0, ["prepare"], ["prepare.scale = 2.0", "2, 3, 4"]),
        ("train.seeds", [-1], ["train", "srcnn"], ["train.seeds = [-1]", "distinct integers"]),
        ("train.seeds", [0, 0], ["evaluate", "srcnn"], ["train.seeds = [0, 0]", "distinct integers"]),
        ("train.validations", 0, ["train", "srcnn"], ["train.validations = 0", ">= 1"]),
        ("srcnn.arch.n1", 0, ["train", "srcnn"], ["srcnn.arch.n1 = 0"]),
        ("vdsr.arch.depth", -2, ["train", "vdsr"], ["vdsr.arch.depth = -2"]),
    ],
)
def test_bad_params_fail_before_any_work(
    workdir: Path, key: str, value, command: list[str], fragments: list[str], srbench_here, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_param(workdir, key, value)
    monkeypatch.chdir(workdir)
    status, stderr = srbench_here(*command)
    assert_one_line_error(subprocess.CompletedProcess(command, status, "", stderr), "params.yaml", *fragments)
    assert not (workdir / "mlruns").exists()  # no MLflow run was even started


def test_srgan_needs_the_srresnet_it_starts_from(workdir: Path) -> None:
    assert_one_line_error(srbench("train", "srgan", cwd=workdir), "--init models/seed0/srresnet.pt")
    assert_one_line_error(srbench("train", "vdsr", "--init", "x.pt", cwd=workdir), "--init: vdsr trains from scratch")


def test_the_default_params_are_the_quick_profile() -> None:
    """Values, not text: `dvc exp run -S` rewrites params.yaml's formatting."""
    assert yaml.safe_load((REPO / "params.yaml").read_text()) == yaml.safe_load((REPO / "profiles" / "quick.yaml").read_text())


def test_a_reformatted_profile_is_still_that_profile(workdir: Path, srbench_here, monkeypatch: pytest.MonkeyPatch) -> None:
    """After `dvc exp run -S` rewrote params.yaml (same values, no comments), switching profiles
    needed --force."""
    shutil.copytree(REPO / "profiles", workdir / "profiles")
    (workdir / "params.yaml").write_text(yaml.safe_dump(yaml.safe_load((REPO / "profiles" / "quick.yaml").read_text()), sort_keys=True))
    monkeypatch.chdir(workdir)
    status, stderr = srbench_here("profile", "paper")
    assert status == 0, stderr
    assert (workdir / "params.yaml").read_text() == (REPO / "profiles" / "paper.yaml").read_text()


def test_profile_switches_params_and_protects_local_edits(workdir: Path) -> None:
    shutil.copytree(REPO / "profiles", workdir / "profiles")
    result = srbench("profile", "paper", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert (workdir / "params.yaml").read_text() == (REPO / "profiles" / "paper.yaml").read_text()
    set_param(workdir, "train.budget", 0.01)
    assert_one_line_error(srbench("profile", "quick", cwd=workdir), "params.yaml", "match no profile", "(nearest, paper: train.budget = 0.01 (profile: 1.0))", "--force")
    assert srbench("profile", "quick", "--force", cwd=workdir).returncode == 0
    assert (workdir / "params.yaml").read_text() == (REPO / "params.yaml").read_text()
    assert_one_line_error(srbench("profile", "huge", cwd=workdir), "profiles/huge.yaml", "paper, quick")


def test_missing_folder_for_folder_source(workdir: Path) -> None:
    set_param(workdir, "data.source", "folder")
    set_param(workdir, "data.folder", str(workdir / "nowhere"))
    assert_one_line_error(srbench("download", cwd=workdir), "data.folder", "nowhere", "folder not found")


def test_unknown_model(workdir: Path) -> None:
    assert_one_line_error(srbench("train", "edsr", cwd=workdir), "unknown model 'edsr'")
    assert_one_line_error(srbench("evaluate", "edsr", cwd=workdir), "unknown model 'edsr'")


def test_missing_params_file_and_missing_data(tmp_path: Path, workdir: Path) -> None:
    assert_one_line_error(srbench("prepare", "--params", "nope.yaml", cwd=tmp_path), "nope.yaml", "not found")
    assert_one_line_error(srbench("train", "srcnn", cwd=workdir), "data/prepared/meta.json", "srbench prepare")


def test_upscale_refuses_unreadable_images(workdir: Path) -> None:
    good = workdir / "good.png"
    write_png(good, np.zeros((8, 8, 3), np.uint8))
    (workdir / "bad.png").write_bytes(b"\x89PNG broken")
    result = srbench("upscale", "--model", "bicubic", "--scale", "2", str(good), "bad.png", "--out", "out", cwd=workdir)
    assert_one_line_error(result, "bad.png", "cannot read image")
    assert not (workdir / "out" / "good.png").exists()  # nothing written before every input was read


def test_upscale_with_bicubic(workdir: Path) -> None:
    write_png(workdir / "in.png", np.full((8, 10, 3), 120, np.uint8))
    result = srbench("upscale", "--model", "bicubic", "--scale", "3", "in.png", "--out", "out", cwd=workdir)
    assert result.returncode == 0, result.stderr
    out = read_image(workdir / "out" / "in.png")
    assert out.shape == (24, 30, 3) and (out == 120).all()


@pytest.mark.parametrize("tile", ["0", "16"])
def test_upscale_keeps_a_jpeg_a_jpeg_when_asked(workdir: Path, tile: str) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)).save(workdir / "photo.jpg", quality=90)
    write_png(workdir / "drawing.png", rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8))
    command = ["upscale", "--model", "bicubic", "--scale", "2", "photo.jpg", "drawing.png", "--out", "out", "--tile", tile]
    result = srbench(*command, "--format", "keep", "--quality", "80", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in (workdir / "out").iterdir()) == ["drawing.png", "photo.jpg"]
    with Image.open(workdir / "out" / "photo.jpg") as image:
        assert image.format == "JPEG" and image.size == (80, 60)
    bicubic = srbench(*command[:-4], "--out", "png", "--tile", tile, cwd=workdir)  # the default: PNG, lossless
    assert bicubic.returncode == 0 and read_image(workdir / "png" / "photo.png").shape == (60, 80, 3)
    exact = read_image(workdir / "png" / "photo.png").astype(int)
    assert np.abs(read_image(workdir / "out" / "photo.jpg").astype(int) - exact).mean() < 8  # JPEG at 80, 4:4:4
    assert_one_line_error(srbench(*command, "--format", "gif", cwd=workdir), "--format gif: choose one of png, keep")


def test_evaluate_and_upscale_a_users_own_images(workdir: Path) -> None:
    import json

    import torch

    from srbench.models import build_model, save_model

    rng = np.random.default_rng(0)
    for name in ("one", "two"):
        write_png(workdir / "photos" / f"{name}.png", rng.integers(0, 256, size=(33, 40, 3), dtype=np.uint8))
    torch.manual_seed(0)
    arch = {"depth": 3, "num_filters": 8}
    save_model(workdir / "vdsr.pt", build_model("vdsr", 3, arch), "vdsr", 3, arch)

    set_param(workdir, "evaluate.lpips", False)
    result = srbench("evaluate", "vdsr", "--weights", "vdsr.pt", "--hr-dir", "photos", "--out", "mine", cwd=workdir)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((workdir / "mine" / "metrics.json").read_text())
    per_image = json.loads((workdir / "mine" / "photos" / "per_image.json").read_text())
    assert metrics["photos"]["n_images"] == 2 and set(per_image) == {"one", "two"}
    assert "lpips" not in metrics["photos"] and all(isinstance(value, (int, float)) for value in metrics["photos"].values())
    assert metrics["photos"]["max_worst_channel_error"] == max(values["worst_channel_error"] for values in per_image.values())  # not averaged away
    evaluation = json.loads((workdir / "mine" / "evaluation.json").read_text())
    assert evaluation == {"lpips": "off (evaluate.lpips: false)", "device": "cpu"}
    assert read_image(workdir / "mine" / "photos" / "sr" / "one.png").shape == (33, 39, 3)  # mod-cropped to x3
    assert not (workdir / "metrics").exists()  # the pipeline's own metrics are left alone

    result = srbench("evaluate", "bicubic", "--hr-dir", "photos", cwd=workdir)
    assert_one_line_error(result, "--out is required with --hr-dir")

    shutil.copy(REPO / "dvc.lock", workdir / "dvc.lock")
    for out, owned, stage in (("results/mine", "results", "report"), ("src", "src/srbench/", "")):
        result = srbench("evaluate", "bicubic", "--hr-dir", "photos", "--out", out, cwd=workdir)
        assert_one_line_error(result, f"--out {out}: overlaps {owned}", stage)  # dvc repro would overwrite it, or it would delete code
    assert not (workdir / "results").exists()

    result = srbench("upscale", "--model", "vdsr", "--weights", "vdsr.pt", "photos/one.png", "--out", "up", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert read_image(workdir / "up" / "one.png").shape == (99, 120, 3)
    assert "upscaled 1 image(s) x3 with vdsr: 0.01 MP written in " in result.stderr and result.stderr.rstrip().endswith("s, in up")

    # a --scale that contradicts the model's own is refused, not ignored
    for command in (["upscale", "--model", "vdsr", "photos/one.png", "--out", "up2"], ["evaluate", "vdsr", "--hr-dir", "photos", "--out", "mine2"]):
        result = srbench(*command, "--weights", "vdsr.pt", "--scale", "2", cwd=workdir)
        assert_one_line_error(result, "--scale 2: vdsr.pt holds vdsr x3, which upscales by its own scale (leave --scale out)")
    assert_one_line_error(srbench("upscale", "--model", "bicubic", "photos/one.png", "--out", "up3", cwd=workdir), "srbench: error: bicubic needs --scale 2, 3 or 4")
    assert not (workdir / "up2").exists() and not (workdir / "mine2").exists()


def test_ui_refuses_a_busy_port_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = srbench("ui", "--port", str(port), cwd=tmp_path)
    assert_one_line_error(result, f"--port {port}: 127.0.0.1:{port} is not free", "choose another --port")


def test_version_and_plain_help_text(tmp_path: Path) -> None:
    version = srbench("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout == "srbench 0.1.0\n"
    help_text = srbench("upscale", "--help", cwd=tmp_path)
    assert help_text.returncode == 0 and "[default: models/seedN/MODEL.pt]" in help_text.stdout  # not eaten as markup
