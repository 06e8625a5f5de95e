"""Data-parallel training with the engine PyTorch users already run: ``torchrun`` starts one
process per GPU (or per CPU share), each process trains a copy of the networks on its rows of
every batch, and DistributedDataParallel averages the gradients. Rank 0 alone writes.

Multi-node is torchrun's own flags, e.g. on each of 2 nodes with 8 GPUs::

    torchrun --nnodes 2 --node_rank {0,1} --master_addr HOST0 --master_port 29500 \\
        --nproc_per_node 8 -m pipeline.cli train srresnet
"""

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)

TIMEOUT = datetime.timedelta(minutes=30)  # rank 0 validates and checkpoints while the others wait


@dataclass(frozen=True)
class World:
    """This process's place among the training processes: its rank, their number, and the rank
    on this node (which GPU it drives)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> "World":
        """The world torchrun describes in RANK, WORLD_SIZE and LOCAL_RANK (one process otherwise)."""
        if "WORLD_SIZE" not in os.environ:
            return cls()
        return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def main(self) -> bool:
        """Rank 0: the process that validates, checkpoints, writes outputs and logs."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: its own GPU (cuda:LOCAL_RANK) when training on CUDA."""
        if device.type == "cuda" and self.size > 1:
            device = torch.device("cuda", self.local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return device

    def start(self, device: torch.device) -> None:
        """Join the process group (NCCL on CUDA, gloo on the CPU); nothing to do for one process."""
        if self.size > 1 and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend, timeout=TIMEOUT, device_id=device if device.type == "cuda" else None)
            logger.info("rank %d of %d (%s, %s)", self.rank, self.size, backend, device)

    def stop(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    def wrap(self, network: nn.Module, device: torch.device, sync_batchnorm: bool | None = None) -> nn.Module:
        """The network as training runs it: DistributedDataParallel over the processes, its batch
        norms synchronised (``sync_batchnorm``; None: on CUDA) so that their statistics are the
        whole batch's as on one GPU (PyTorch's SyncBatchNorm runs on GPUs only: on the CPU each
        process normalises its own rows)."""
        if self.size == 1:
            return network
        if device.type == "cuda" if sync_batchnorm is None else sync_batchnorm:
            network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
        return DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)

    def mean(self, values: Tensor) -> Tensor:
        """The mean of ``values`` over the processes (a collective: every rank calls it)."""
        if self.size > 1:
            values = values.clone()
            dist.all_reduce(values)
            values /= self.size
        return values
