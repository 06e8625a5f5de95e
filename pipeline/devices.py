"""One GPU per training when several run at once: `dvc queue start -j N` on a machine with N GPUs.

A training asked to run on ``auto`` (or ``cuda``) with one process, on a machine with several
GPUs, takes the first GPU no other srbench training of this workspace holds and keeps it until it
ends; when every one is taken it waits for one. The claims are kernel locks (``flock``) on files
in the workspace's ``.srbench/locks/`` (the user's workspace also for the temporary copies queued
experiments run in), so a killed training frees its GPU. Every worker must see the same GPUs
(the same ``CUDA_VISIBLE_DEVICES``, or none).
"""

import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pipeline.process import WorkspaceBusy, logger, workspace_lock

WAIT_SECONDS = 2.0  # between two looks at the pool when every device is taken


@contextmanager
def claim_device(candidates: Sequence[str], lock_dir: Path, wait_seconds: float = WAIT_SECONDS) -> Iterator[str]:
    """Hold the first of ``candidates`` (device names, e.g. ``cuda:0``) that no other claim in
    ``lock_dir`` holds (a :func:`pipeline.process.workspace_lock` each), for the duration; while
    all are held, wait (a stop signal ends the wait)."""
    waiting_since = None
    with ExitStack() as stack:
        while True:
            for name in candidates:
                try:
                    stack.enter_context(workspace_lock(f"device-{name.replace(':', '-')}", f"a training on {name}", lock_dir))
                except WorkspaceBusy:
                    continue
                if waiting_since is not None:
                    logger.info("%s is free after %.0f s", name, time.monotonic() - waiting_since)
                yield name
                return
            if waiting_since is None:
                waiting_since = time.monotonic()
                logger.info("every device of %s is taken by another training in this workspace: waiting for one", ", ".join(candidates))
            time.sleep(wait_seconds)


def device_pool(requested: str, nproc: int, under_torchrun: bool, gpus: int) -> list[str]:
    """The devices a training may claim from: every GPU when it asked for ``auto`` or ``cuda``,
    runs as one process outside torchrun and the machine has several; else none (it runs where
    it asked, as before)."""
    if requested not in ("auto", "cuda") or nproc > 1 or under_torchrun or gpus < 2:
        return []
    return [f"cuda:{index}" for index in range(gpus)]
