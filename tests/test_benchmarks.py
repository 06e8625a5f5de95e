"""benchmarks/train_throughput.py runs end to end on a small prepared set and writes its table."""

import json
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_train_throughput_measures_each_model_and_writes_json_and_markdown(prepared_x2: Path, tmp_path: Path) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["srcnn"] |= {"batch_size": 4, "patch_size": 16}
    params["srcnn"]["arch"] = {"n1": 8, "n2": 4, "f1": 5, "f2": 1, "f3": 3}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    command = [
        sys.executable, "benchmarks/train_throughput.py", "--params", str(tmp_path / "params.yaml"), "--data", str(prepared_x2),
        "--models", "srcnn", "--seconds", "0.3", "--warmup", "1", "--gpus", "1", "2", "--out", str(tmp_path / "out"),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "train_throughput.json").read_text())
    [row] = report["rows"]
    assert row["model"] == "srcnn" and row["batch_size"] == 4 and row["real_steps_per_s"] > 0 and row["fixed_steps_per_s"] > 0
    assert row["ratio"] == row["real_steps_per_s"] / row["fixed_steps_per_s"]
    # SRCNN's convolutions on the bicubic-upsampled 16 px luma crops (srcnn.channels: y), 2 FLOPs a
    # multiply-add: forward, then at least the weight gradients
    forward = 2 * 4 * 16 * 16 * (8 * 1 * 25 + 4 * 8 + 1 * 4 * 9)
    assert row["flops_per_step"] >= 2 * forward
    assert set(row["hours"]) == {"1", "2"} and report["matmul_tflops"] > 0
    assert "| srcnn | 4 x 16 |" in (tmp_path / "out" / "train_throughput.md").read_text()


def test_the_gpu_acceptance_run_smoke_tests_on_the_cpu(tmp_path: Path) -> None:
    """benchmarks/gpu_acceptance.py --smoke: every section on the CPU with tiny settings (the GPU
    run is the same code with the paper profile's), one table, one JSON file."""
    command = [sys.executable, "benchmarks/gpu_acceptance.py", "--smoke", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_acceptance.json").read_text())
    checks = {check["check"]: check["ok"] for check in report["cuda_checks"]}
    assert checks["patch store on the device; on the host, pinned, prefetched"] is True
    assert checks["bf16 autocast follows fp32 (5 steps)"] is True  # autocast taken on the CPU, close to fp32
    assert [row["model"] for row in report["throughput"]["rows"]] == ["srcnn", "vdsr"] and all(row["ratio"] > 0 for row in report["throughput"]["rows"])
    assert report["hours"]["one"] > 0 and report["vdsr"]["steps"] == 6 and report["vdsr"]["bicubic_psnr_y"] > 20
    assert [check["model"] for check in report["checks"]] == ["srcnn", "vdsr"]
    table = (tmp_path / "gpu_acceptance.md").read_text()
    assert "| paper profile, 8 GPUs |" in table and "| check vdsr (4 steps) |" in table and "SMOKE" in table
