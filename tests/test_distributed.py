"""Data-parallel training on the CPU: `srbench train` under torchrun with gloo and 2 processes.

The same code path as on N GPUs, minus NCCL and synchronised batch norm: each rank trains on its
half of every batch, gradients are averaged, rank 0 alone writes outputs and logs one MLflow run."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import chdir
from pathlib import Path

import mlflow
import pytest
import torch
import yaml

from local_server import free_port
from pipeline.process import WorkspaceBusy, workspace_lock
from pipeline.tracking import EXPERIMENT, tracking_uri
from srbench.distributed import World

REPO = Path(__file__).resolve().parents[1]
SRBENCH = str(Path(sys.executable).parent / "srbench")


def tiny_params(workdir: Path, model: str, steps: int, nproc: int, **train: object) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"] |= {"nproc": nproc, "log_every": 5, "validations": 1, "checkpoint_every": 10, **train}
    params[model] |= {"steps": steps, "batch_size": 8, "patch_size": 16}
    params[model]["optimizer"] = {"name": "adam", "lr": 1.0e-3}
    if model in ("srresnet", "srgan-seed"):
        params[model]["arch"] |= {"num_features": 8, "num_blocks": 2}
    if model == "srresnet":
        params[model]["arch"]["bicubic_skip"] = False  # from scratch, so that its loss falls a long way in 40 steps
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


def train(workdir: Path, model: str, prepared: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.run(
        [SRBENCH, "train", model, "--data", str(prepared), *extra], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )


def mlflow_runs(workdir: Path):
    mlflow.set_tracking_uri(tracking_uri(workdir / "mlruns"))
    return mlflow.search_runs(experiment_names=[EXPERIMENT])


def test_two_processes_train_one_model_and_write_it_once(prepared_x2: Path, tmp_path: Path) -> None:
    tiny_params(tmp_path, "srresnet", steps=40, nproc=2)  # batch norm: each rank normalises its own rows on gloo
    result = train(tmp_path, "srresnet", prepared_x2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 1 of 2 (gloo, cpu)" in result.stderr and "rank 0 of 2 (gloo, cpu)" in result.stderr

    summary = json.loads((tmp_path / "metrics/train/seed0/srresnet.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 40
    losses = [float(row["loss"]) for row in csv.DictReader((tmp_path / "plots/train/seed0/srresnet.csv").open()) if row["loss"]]
    assert len(losses) == 8 and sum(losses[-2:]) < 0.7 * sum(losses[:2])
    assert torch.load(tmp_path / "models/seed0/srresnet.pt", weights_only=True)["name"] == "srresnet"
    assert list((tmp_path / "checkpoints").iterdir()) == []  # a finished run leaves no checkpoint
    assert result.stderr.count("step 40 validation psnr_y") == 1  # rank 0 alone validates

    runs = mlflow_runs(tmp_path)
    assert len(runs) == 1 and runs.iloc[0]["status"] == "FINISHED"
    assert runs.iloc[0]["params.world_size"] == "2" and runs.iloc[0]["params.nproc"] == "2"


def test_two_processes_play_the_adversarial_game(prepared_x2: Path, tmp_path: Path) -> None:
    tiny_params(tmp_path, "srgan-seed", steps=6, nproc=2)  # both networks data-parallel, the discriminator run 3 times a step
    result = train(tmp_path, "srgan-seed", prepared_x2)
    assert result.returncode == 0, result.stderr[-3000:]
    history = list(csv.DictReader((tmp_path / "plots/train/seed0/srgan-seed.csv").open()))
    assert {"discriminator_loss", "d_real", "d_fake"} <= set(history[0])
    assert json.loads((tmp_path / "metrics/train/seed0/srgan-seed.json").read_text())["world_size"] == 2
    assert len(mlflow_runs(tmp_path)) == 1


def test_a_run_of_two_processes_stopped_by_sigterm_resumes_in_one(prepared_x2: Path, tmp_path: Path) -> None:
    """The launcher holds the model's lock for torchrun's processes; SIGTERM to `srbench train`
    reaches them (rank 0 ends its MLflow run KILLED); the checkpoint they left resumes in one
    process."""
    tiny_params(tmp_path, "srcnn", steps=400, nproc=2, log_every=2, checkpoint_every=2)
    command = [SRBENCH, "train", "srcnn", "--data", str(prepared_x2)]
    process = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (tmp_path / "checkpoints/seed0/srcnn.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(WorkspaceBusy, match=r"srbench train srcnn --seed 0 \(pid \d+\) is already running"), chdir(tmp_path), workspace_lock("train-srcnn-seed0"):
        pass  # the launcher's lock, held for torchrun's processes
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode != 0 and "srbench: stopped by SIGTERM" in stderr, stderr[-3000:]
    assert list(mlflow_runs(tmp_path)["status"]) == ["KILLED"]
    stopped_at = torch.load(tmp_path / "checkpoints/seed0/srcnn.pt", weights_only=True)["step"]

    tiny_params(tmp_path, "srcnn", steps=400, nproc=1, log_every=2, checkpoint_every=2)
    result = train(tmp_path, "srcnn", prepared_x2, "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resumed from checkpoints/seed0/srcnn.pt at step {stopped_at}" in result.stderr
    history = list(csv.DictReader((tmp_path / "plots/train/seed0/srcnn.csv").open()))
    assert [int(row["step"]) for row in history if row["loss"]] == list(range(2, 401, 2))
    assert json.loads((tmp_path / "metrics/train/seed0/srcnn.json").read_text())["world_size"] == 1


def weights_of(workdir: Path, model: str) -> dict[str, torch.Tensor]:
    return torch.load(workdir / f"models/seed0/{model}.pt", weights_only=True)["state_dict"]


#: docs/gpu.md's multi-node command, word for word but for the host and the processes per node.
NODE_COMMAND = "torchrun --nnodes 2 --nproc_per_node {nproc} --rdzv_backend c10d --rdzv_endpoint {host}:{port} --rdzv_id {job} -m pipeline.cli train {model}"


def test_two_nodes_train_the_same_model_as_one_node_with_as_many_processes(prepared_x2: Path, tmp_path: Path) -> None:
    """Two torchrun "nodes" on 127.0.0.1 (c10d rendezvous, gloo), one process each, write the
    weights one node with two processes writes: the same global batch split over the same ranks."""
    one_node, two_nodes = tmp_path / "one-node", tmp_path / "two-nodes"
    for workdir in (one_node, two_nodes):
        workdir.mkdir()
        tiny_params(workdir, "srcnn", steps=12, nproc=2 if workdir == one_node else 1)
    assert train(one_node, "srcnn", prepared_x2).returncode == 0

    documented = (REPO / "docs" / "gpu.md").read_text()
    assert NODE_COMMAND.format(nproc=8, host="HOST0", port=29500, job="srbench-srresnet", model="srresnet") in documented
    command = NODE_COMMAND.format(nproc=1, host="127.0.0.1", port=free_port(), job="test", model="srcnn").split()
    command = [sys.executable, "-m", "torch.distributed.run", *command[1:], "--data", str(prepared_x2)]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    nodes = [subprocess.Popen(command, cwd=two_nodes, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [node.communicate(timeout=300)[1] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], errors[0][-2000:] + errors[1][-2000:]
    assert sum("rank 0 of 2 (gloo, cpu)" in error for error in errors) == 1 and sum("rank 1 of 2 (gloo, cpu)" in error for error in errors) == 1

    expected, got = weights_of(one_node, "srcnn"), weights_of(two_nodes, "srcnn")
    assert expected.keys() == got.keys() and all(torch.equal(expected[key], got[key]) for key in expected)
    runs = mlflow_runs(two_nodes)
    assert len(runs) == 1 and runs.iloc[0]["params.world_size"] == "2"  # one node logged, the other only trained


def test_a_batch_the_processes_cannot_share_is_refused_before_launching(prepared_x2: Path, tmp_path: Path) -> None:
    tiny_params(tmp_path, "srcnn", steps=10, nproc=3)
    result = train(tmp_path, "srcnn", prepared_x2)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "srbench: error: params.yaml: srcnn.batch_size = 8: must be a multiple of the 3 processes" in result.stderr
    assert "torch.distributed.run" not in result.stderr


def test_world_reads_torchrun_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert World.from_environment() == World(0, 1, 0) and World().main
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    world = World.from_environment()
    assert world == World(3, 4, 1) and not world.main
    assert world.device(torch.device("cpu")) == torch.device("cpu")
    assert torch.equal(World().mean(torch.tensor([1.0, 2.0])), torch.tensor([1.0, 2.0]))
