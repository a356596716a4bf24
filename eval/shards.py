"""Evaluation shared among ``torchrun`` processes (several GPUs, nodes, or CPU processes).

``torchrun --nproc_per_node N --no-python matconv-port eval ...`` starts N processes
(``--nnodes``/``--rdzv-endpoint`` for several machines); :func:`join` makes each one a
member of the process group through the training's
:func:`~matconv_port.train.distributed.init_distributed` (NCCL on CUDA, gloo on CPU).

How the work is shared, and gathered through files rather than collectives:

* every process plans every video (cheap, deterministic) and reads every score log
  already in the output folder (``video_scores.jsonl`` and ``video_scores.rank<R>.jsonl``,
  whatever the number of processes that wrote them), after process 0 has cut torn
  last lines (:func:`barrier` between the two);
* the videos not scored yet are dealt out in plan order, process ``r`` taking every
  ``N``-th from the ``r``-th (:func:`share`), and each process appends its scores to
  its own log (:func:`log_name`), so an interrupted run resumes with any number of
  processes;
* after a barrier, process 0 reads all logs and writes the one ``summary.json``; the
  others wait for it and read it back.

The only collectives are barriers, :func:`gather_objects` (the videos skipped at
run time) and :func:`total` (a count checked against the plan), whose tensor lives
on the process's device (:func:`~matconv_port.devices.check_on_device`), as NCCL needs.
"""
from __future__ import annotations

import glob
import os
from typing import Any, Sequence, TypeVar

import torch
import torch.distributed as dist

from matconv_port.devices import check_on_device
from matconv_port.train.distributed import DistInfo, init_distributed, shutdown

__all__ = ["join", "leave", "single", "share", "log_name", "log_paths", "barrier", "gather_objects", "total", "LOG_PREFIX"]

T = TypeVar("T")
LOG_PREFIX = "video_scores"


def single(device: torch.device) -> DistInfo:
    """One process on ``device`` (no process group)."""
    return DistInfo(0, 1, 0, torch.device(device), "")


def join(device: torch.device) -> DistInfo:
    """Join the ``torchrun`` process group when the environment describes one (``WORLD_SIZE``
    > 1), else :func:`single`. ``device`` is the process's resolved ``--device``
    (:func:`~matconv_port.devices.resolve_device` gives GPU ``LOCAL_RANK`` for ``cuda``)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return single(device)
    info = init_distributed(torch.device(device).type)
    if info.device.type == "cuda" and torch.device(device) != info.device:
        info.device = torch.device(device)
        torch.cuda.set_device(info.device)
    return info


def leave(info: DistInfo) -> None:
    """Leave the process group :func:`join` joined (no-op for one process)."""
    shutdown(info)


def share(items: Sequence[T], info: DistInfo) -> list[T]:
    """This process's share of ``items``: every ``world_size``-th from its rank on."""
    return list(items[info.rank::info.world_size])


def log_name(rank: int) -> str:
    """The score log process ``rank`` appends to (process 0: the one-process name)."""
    return f"{LOG_PREFIX}.jsonl" if rank == 0 else f"{LOG_PREFIX}.rank{rank}.jsonl"


def log_paths(out_dir: str) -> list[str]:
    """Every score log in ``out_dir``: process 0's first, then by rank."""
    first = os.path.join(out_dir, log_name(0))
    ranked = []
    for p in glob.glob(os.path.join(glob.escape(out_dir), f"{LOG_PREFIX}.rank*.jsonl")):
        r = os.path.basename(p)[len(LOG_PREFIX) + len(".rank"):-len(".jsonl")]
        if r.isdigit():
            ranked.append((int(r), p))
    return ([first] if os.path.exists(first) else []) + [p for _, p in sorted(ranked)]


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """``obj`` of every process, by rank (``[obj]`` for one process)."""
    if not info.active:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def total(count: int, info: DistInfo) -> int:
    """The sum of ``count`` over all processes (a tensor on this process's device)."""
    if not info.active:
        return int(count)
    t = torch.tensor([int(count)], dtype=torch.int64, device=info.device)
    check_on_device([t], info.device, "score count")
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return int(t.item())
