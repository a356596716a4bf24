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
        """Collectives run: several processes, or a process group joined on purpose
        (``backend`` set; world size 1 under a test's single-process group)."""
        return self.world_size > 1 or bool(self.backend)


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the ``torchrun`` process group if the environment describes one.

    ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when
    available), resolved by :func:`matconv_port.devices.resolve_device`: under torchrun
    each process uses GPU ``LOCAL_RANK``, and a device this machine lacks (no CUDA,
    ``cuda:3`` on a 1-GPU machine, more processes than GPUs on a node) is a one-line
    :class:`~matconv_port.devices.DeviceError` raised BEFORE the process group is
    joined or anything is written.
    """
    from matconv_port.devices import resolve_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    use_cuda = dev.type == "cuda"
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if use_cuda and world > 1 and local_world > 1 and torch.device(str(device).strip()).index is not None:
        from matconv_port.devices import DeviceError

        raise DeviceError(f"--device {device}: torchrun started {local_world} processes on this node and all of "
                          f"them would use that one GPU; use --device cuda (each process takes GPU LOCAL_RANK)")
    if use_cuda:
        torch.cuda.set_device(dev)
    backend = ""
    if world > 1:
        backend = "nccl" if use_cuda else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, **({"device_id": dev} if use_cuda else {}))
        else:
            backend = dist.get_backend()
    return DistInfo(rank, world, local, dev, backend)


def all_reduce_sum(tensors: list[torch.Tensor], info: DistInfo) -> None:
    """Sum each tensor across processes, in place (no-op for one process).

    Every tensor must live on the process's device (``info.device``): NCCL refuses CPU
    tensors. The check runs ALWAYS, also for one process and on CPU, so that a CPU
    test catches the mistake a GPU run would die of."""
    from matconv_port.devices import check_on_device

    check_on_device(tensors, info.device, what="all_reduce_sum tensor")
    if not info.active:
        return
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)


def all_reduce_stats(vec: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a CPU statistics vector (float64) across processes: it crosses on the
    process's device (float64 is fine on CUDA) and comes back on the CPU."""
    on_dev = vec.to(info.device)
    all_reduce_sum([on_dev], info)
    return on_dev.cpu()


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.active and dist.is_initialized():
        dist.destroy_process_group()
