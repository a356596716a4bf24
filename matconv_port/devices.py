"""``--device`` for every command: one parser, one set of one-line refusals.

``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available). Under ``torchrun``
each process takes GPU ``LOCAL_RANK`` of its node, and more processes than GPUs on a
node is refused before anything is written.
"""
from __future__ import annotations

import os

import torch

from matconv_port.errors import MatConvPortError


class DeviceError(MatConvPortError):
    """A ``--device`` that this machine does not have."""


def _cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(name: "str | torch.device | None" = "cpu", *, option: str = "--device",
                   local_rank: int | None = None, local_world_size: int | None = None) -> torch.device:
    """``name`` as a :class:`torch.device` that exists here, or a :class:`DeviceError`
    naming it. ``local_rank``/``local_world_size`` (default: torchrun's environment):
    with plain ``cuda`` the process takes GPU ``local_rank``."""
    if isinstance(name, torch.device):
        name = str(name)
    name = (name or "cpu").strip()
    if local_rank is None and "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        local_rank = int(os.environ["LOCAL_RANK"])
        local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(f"{option} {name}: not a device (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise DeviceError(f"{option} {name}: unsupported device type {device.type!r} (use cpu, cuda, cuda:N or auto)")
    count = _cuda_count()
    if count == 0:
        why = "this torch is a CPU-only build" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise DeviceError(f"{option} {name}: CUDA is not available ({why})")
    if device.index is not None:
        if device.index >= count:
            raise DeviceError(f"{option} {name}: this machine has {count} CUDA GPU(s) (cuda:0..cuda:{count - 1})")
        return device
    if local_rank is not None:
        if local_world_size is not None and local_world_size > count:
            raise DeviceError(f"{option} {name}: torchrun started {local_world_size} processes on this node "
                              f"but it has {count} CUDA GPU(s); use --nproc_per_node {count} or fewer")
        if local_rank >= count:
            raise DeviceError(f"{option} {name}: process LOCAL_RANK {local_rank} has no GPU "
                              f"(this node has {count})")
        return torch.device("cuda", local_rank)
    return torch.device("cuda", torch.cuda.current_device())


def check_on_device(tensors, device: torch.device, what: str = "tensor") -> None:
    """Refuse (a bug, not bad input) any tensor not on ``device``; collectives such
    as NCCL's all_reduce only take tensors on the process's own GPU. Called on CPU too,
    so that a CPU test catches a GPU-only mistake."""
    device = torch.device(device)
    for i, t in enumerate(tensors):
        if t.device.type != device.type or (device.index is not None and t.device.index not in (None, device.index)):
            raise RuntimeError(f"{what} {i} is on {t.device}, not on this process's device {device} "
                               f"(collectives need every tensor on the process's device)")
