"""Shared-memory buffers that ``DataLoader`` workers reuse chunk after chunk.

Sending a freshly allocated tensor from a worker to the main process costs, for every
chunk, a new shared-memory file, the zero-filling page faults of the worker's writes,
passing its file descriptor, a new mapping in the main process with page faults of its
own, and unmapping it again: on a 2-core machine that is about as much CPU as decoding
the JPEGs themselves. A :class:`SlotPool` is allocated ONCE in the main process before
the workers start (they inherit it, or receive it once when the dataset is pickled
for a spawned worker); a worker writes a chunk into one of its own slots and sends
only the slot number (:func:`slot_views` rebuilds the tensors in the receiving
process); the consumer calls :meth:`SlotPool.release` when it has read the slot.

Correctness never depends on the pool: worker ``w`` only uses slots of its own range,
marks a slot busy before writing it and uses it again only after the consumer has
released it; when none of its slots is free, or a chunk does not fit a slot, the
worker allocates a fresh shared tensor as before.
"""
from __future__ import annotations

import itertools
import os
import weakref

import numpy as np
import torch

__all__ = ["SlotPool", "SlotRef", "slot_views", "shared_empty"]

_POOLS: "weakref.WeakValueDictionary[str, SlotPool]" = weakref.WeakValueDictionary()
_ids = itertools.count()


def shared_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A tensor allocated directly in shared memory (pages not touched yet; no copy
    when it is sent to another process)."""
    nbytes = int(np.prod(shape)) * torch.empty((), dtype=dtype).element_size()
    try:
        storage = torch.UntypedStorage._new_shared(max(1, nbytes))
        return torch.empty(0, dtype=dtype).set_(storage, 0, shape)
    except Exception:  # pragma: no cover - private API missing
        return torch.empty(shape, dtype=dtype).share_memory_()


class SlotRef(tuple):
    """``(pool_id, slot, specs)``: what a worker sends instead of the tensors it wrote
    into a slot; ``specs`` has, per tensor, ``(byte offset, shape, dtype name)`` for a
    view of the slot, or the tensor itself (or None) when it lies outside the pool."""

    __slots__ = ()


class SlotPool:
    """``num_workers x slots_per_worker`` shared buffers of ``slot_bytes`` each.

    ``busy[s]`` is 1 from :meth:`acquire` (in the worker) to :meth:`release` (in the
    consumer). The pool registers itself under :attr:`pool_id` in every process that
    holds it, so :func:`slot_views` can find it when a :class:`SlotRef` arrives.
    """

    def __init__(self, num_workers: int, slots_per_worker: int, slot_bytes: int):
        self.num_workers = int(num_workers)
        self.slots_per_worker = int(slots_per_worker)
        self.slot_bytes = int(slot_bytes)
        self.pool_id = f"{os.getpid()}-{next(_ids)}"
        self.data = shared_empty((max(1, self.num_workers * self.slots_per_worker * self.slot_bytes),), torch.uint8)
        self.busy = torch.zeros(self.num_workers * self.slots_per_worker, dtype=torch.int32).share_memory_()
        _POOLS[self.pool_id] = self

    def __getstate__(self) -> dict:
        return dict(self.__dict__)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        _POOLS[self.pool_id] = self

    def acquire(self, worker_id: int) -> int | None:
        """A free slot of worker ``worker_id``'s range, now marked busy; None when all
        are in use (or the worker id is outside the pool)."""
        if not 0 <= worker_id < self.num_workers:
            return None
        busy = self.busy.numpy()
        first = worker_id * self.slots_per_worker
        for s in range(first, first + self.slots_per_worker):
            if busy[s] == 0:
                busy[s] = 1
                return s
        return None

    def release(self, slot: int) -> None:
        """Give ``slot`` back to its worker (the consumer has read it)."""
        self.busy.numpy()[slot] = 0

    def holds(self, t: torch.Tensor) -> bool:
        """Whether ``t`` is a view of this pool's memory."""
        return t.untyped_storage().data_ptr() == self.data.untyped_storage().data_ptr()

    def slot_tensor(self, slot: int, offset: int, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A ``shape`` tensor of ``dtype`` at byte ``offset`` of ``slot`` (no copy)."""
        n = int(np.prod(shape)) * torch.empty((), dtype=dtype).element_size()
        if offset + n > self.slot_bytes:
            raise ValueError(f"{n} bytes at offset {offset} do not fit a slot of {self.slot_bytes}")
        start = slot * self.slot_bytes + offset
        return self.data[start:start + n].view(dtype).view(shape)


def slot_views(ref: SlotRef) -> tuple[SlotPool, list[torch.Tensor | None]]:
    """The pool and the tensors a :class:`SlotRef` describes, in this process."""
    pool_id, slot, specs = ref
    pool = _POOLS.get(pool_id)
    if pool is None:
        raise RuntimeError(f"buffer pool {pool_id} is not known in this process")
    out = [s if s is None or isinstance(s, torch.Tensor) else pool.slot_tensor(slot, s[0], tuple(s[1]), getattr(torch, s[2]))
           for s in specs]
    return pool, out
