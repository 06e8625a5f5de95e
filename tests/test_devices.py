"""One GPU per training when several run at once (pipeline/devices.py): which trainings draw from
the pool, a claim per device, a wait while every device is taken, a claim freed by its holder's
death. The claims are files and locks only, so the CPU takes every branch."""

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from pipeline.devices import claim_device, device_pool

GPUS = ["cuda:0", "cuda:1"]


def test_only_a_single_process_auto_or_cuda_training_on_several_gpus_draws_from_the_pool() -> None:
    assert device_pool("auto", nproc=1, under_torchrun=False, gpus=2) == GPUS
    assert device_pool("cuda", nproc=1, under_torchrun=False, gpus=3) == [*GPUS, "cuda:2"]
    assert device_pool("cuda:1", nproc=1, under_torchrun=False, gpus=2) == []  # a device named by the user is used as named
    assert device_pool("auto", nproc=2, under_torchrun=False, gpus=2) == []  # torchrun gives each rank its GPU
    assert device_pool("auto", nproc=1, under_torchrun=True, gpus=2) == []
    assert device_pool("auto", nproc=1, under_torchrun=False, gpus=1) == []
    assert device_pool("cpu", nproc=1, under_torchrun=False, gpus=0) == []


def test_each_claim_gets_its_own_device_and_a_full_pool_waits_for_one(tmp_path: Path) -> None:
    with claim_device(GPUS, tmp_path) as first, claim_device(GPUS, tmp_path) as second:
        assert (first, second) == ("cuda:0", "cuda:1")
        got: list[str] = []

        def third() -> None:
            with claim_device(GPUS, tmp_path, wait_seconds=0.05) as device:
                got.append(device)

        waiting = threading.Thread(target=third)
        waiting.start()
        time.sleep(0.5)
        assert got == [], "a third training ran while both devices were taken"
    waiting.join(timeout=10)
    assert got == ["cuda:0"]  # the first freed
    with claim_device(GPUS, tmp_path) as again:
        assert again == "cuda:0"  # released on leaving


HOLD = """
import sys, time
from pathlib import Path
from pipeline.devices import claim_device
with claim_device(["cuda:0", "cuda:1"], Path(sys.argv[1])) as device:
    print(device, flush=True)
    time.sleep(600)
"""


def test_a_killed_training_frees_its_device(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "cuda:0"
        with claim_device(GPUS, tmp_path) as device:
            assert device == "cuda:1"
    finally:
        holder.kill()
        holder.wait()
    with claim_device(GPUS, tmp_path) as device:
        assert device == "cuda:0"  # kill -9 left no stale claim
