"""benchmarks/flat_response.py: a flat field through a model, measured away from the borders."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srbench.models import build_model, save_model

from benchmark_scripts import benchmark_module

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "flat_response.py"


@pytest.fixture(scope="module")
def flat():
    with benchmark_module("flat_response") as module:
        yield module


def test_an_untrained_vdsr_with_a_biased_last_layer_shows_its_bias(flat) -> None:
    model = build_model("vdsr", 2, {"depth": 3, "num_filters": 4}, channels="rgb").eval()
    last = model.residual[-1]
    torch.nn.init.zeros_(last.weight)
    with torch.no_grad():
        last.bias.copy_(torch.tensor([0.5, -1.0, 2.0]) / 255)  # a tint of +0.5, -1, +2 levels
    for colour in [(16, 16, 16), (40, 160, 40)]:
        assert flat.response(model, 2, colour, 24) == pytest.approx((0.5, -1.0, 2.0), abs=1e-3)


def test_a_luma_model_moves_r_g_b_alike_and_an_untrained_one_is_not_flat(flat) -> None:
    model = build_model("vdsr", 2, {"depth": 3, "num_filters": 4}, channels="y").eval()
    torch.nn.init.zeros_(model.network.residual[-1].weight)
    with torch.no_grad():
        model.network.residual[-1].bias.fill_(1.0 / 255)  # +1 level of luma
    r, g, b = flat.response(model, 2, (200, 40, 40), 24)
    assert r == pytest.approx(g, abs=0.02) and g == pytest.approx(b, abs=0.02)  # Y + 1 level moves R, G, B alike
    assert 1.0 < r < 1.3  # 255/219 = 1.16: BT.601's Y spans 16-235
    assert flat.response(build_model("vdsr", 2, {"depth": 3, "num_filters": 4}).eval(), 2, (96, 96, 96), 24) != (0.0, 0.0, 0.0)


def test_the_script_prints_a_row_per_model(flat, tmp_path: Path) -> None:
    model = build_model("srcnn", 2, {"n1": 4, "n2": 2, "f1": 3, "f2": 1, "f3": 3}, channels="y")
    save_model(tmp_path / "a.pt", model, "srcnn", 2, {"n1": 4, "n2": 2, "f1": 3, "f2": 1, "f3": 3}, channels="y")
    out = tmp_path / "flat.md"
    done = subprocess.run([sys.executable, str(SCRIPT), "--models", "srcnn", "--weights", f"srcnn={tmp_path / 'a.pt'}",
                           "--size", "16", "--md", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [line for line in out.read_text().splitlines() if line.startswith("| srcnn |")]
    assert len(rows) == 1 and len(rows[0].split("|")) == 2 + len(flat.flat_fields()) + 2
    missing = subprocess.run([sys.executable, str(SCRIPT), "--models", "vdsr"], capture_output=True, text=True, cwd=tmp_path)
    assert missing.returncode != 0 and "models/seed0/vdsr.pt" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1

