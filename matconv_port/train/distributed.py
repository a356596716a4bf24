"""Multi-process training through ``torchrun`` (one process per GPU, or several on CPU).

``torchrun --nproc_per_node=K --no-python matconv-port train fusion ...`` (add
``--nnodes``/``--rdzv-endpoint`` for several machines) sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; :func:`init_distributed`
then joins the process group (NCCL on GPU, gloo on CPU). Like MatConvNet's
multi-GPU ``cnn_train_dag`` (``spmd`` + memory-mapped gradients), every process runs
its own interleaved share of each batch's sub-batches, the summed gradients (and
batch-norm moment sums and statistics) are added across processes once per batch,
and every process applies the same update, so the replicas stay identical. This is
DistributedDataParallel's all-reduce done once per batch instead of once per
sub-batch, which is what gradient accumulation needs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the ``torchrun`` process group if the environment describes one.

    ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available). Under
    torchrun each process uses GPU ``LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        index = local if world > 1 else (torch.device(device).index or 0 if device.startswith("cuda") else 0)
        dev = torch.device("cuda", index)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    backend = ""
    if world > 1:
        backend = "nccl" if use_cuda else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local, dev, backend)


def all_reduce_sum(tensors: list[torch.Tensor], info: DistInfo) -> None:
    """Sum each tensor across processes, in place (no-op for one process)."""
    if not info.active:
        return
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.active and dist.is_initialized():
        dist.destroy_process_group()
