"""Writing a converted file whose weights go straight from the MatConvNet file into
the output, without a full in-memory copy of the network.

``torch.save`` of a converted model needs every tensor in memory first; for a 1 GB
network that means 1 GB of fresh process memory for the weights and, while saving,
1 GB of page cache for the file, plus a copy between them. Here:

1. ``torch.save`` runs under :class:`torch.serialization.skip_data`: the file gets its
   full layout (``data.pkl``, every record at its final offset) but no tensor bytes;
2. each param's record offset is found (the file mapped read-only by
   ``torch.load(mmap=True)``), and its torch layout is written there with ``pwrite``,
   a block of rows at a time through two reused buffers (a writer thread writes one
   block while the next is laid out), read from its MatConvNet-layout source (for big
   arrays of uncompressed v7.3 files, a read-only map of the source file itself): the
   only new memory is the output's page cache;
3. the zip CRC-32 of each data record (left 0 by step 1; computed while writing) is
   written into its data descriptor and central-directory entry, so the file is a
   standard zip (``unzip -t`` passes) exactly like one written by ``torch.save``.

The result loads with ``torch.load(weights_only=True)`` like any converted file.
:func:`supported` says whether this torch has the two serialization features used
(``skip_data``, ``torch.load(mmap=True)``); callers fall back to filling the
params in memory and ``torch.save`` otherwise.
"""
from __future__ import annotations

import os
import struct
import zipfile
import zlib
from typing import Any

import numpy as np
import torch

__all__ = ["supported", "save_with_deferred_params", "fill_zip_crcs", "LayoutUnknown"]


class LayoutUnknown(RuntimeError):
    """The file written by ``torch.save`` under ``skip_data`` cannot be matched to the
    payload's tensors (a torch whose format differs): nothing was written into it, and
    the caller falls back to ``torch.save`` of filled tensors."""


_DESCRIPTOR_SIG = b"PK\x07\x08"
_CENTRAL_SIG = b"PK\x01\x02"


def supported() -> bool:
    """Whether this torch can write a file's layout first and its bytes afterwards."""
    ser = torch.serialization
    return hasattr(ser, "skip_data") and hasattr(os, "pwrite")


def save_with_deferred_params(payload: dict[str, Any], path: str, sources: dict[str, tuple[str, Any]]) -> None:
    """Write ``payload`` (whose ``payload["params"]`` tensors are still empty) to
    ``path``, then each param's torch layout from ``sources[name] = (layout,
    MatConvNet-layout array)`` into its record (and any other tensor of the payload
    from memory), then the CRCs."""
    with torch.serialization.skip_data():
        torch.save(payload, path)
    records = _record_offsets(path, payload)
    crcs = _write_records(path, records, sources)
    fill_zip_crcs(path, crcs)


def _tensors(obj: Any, where: tuple = ()) -> list[tuple[tuple, torch.Tensor]]:
    """Every tensor inside dicts/lists/tuples, with its path."""
    if isinstance(obj, torch.Tensor):
        return [(where, obj)]
    if isinstance(obj, dict):
        return [t for k, v in obj.items() for t in _tensors(v, where + (k,))]
    if isinstance(obj, (list, tuple)):
        return [t for i, v in enumerate(obj) for t in _tensors(v, where + (i,))]
    return []


def _record_offsets(path: str, payload: dict[str, Any]) -> list[tuple[int, tuple, torch.Tensor]]:
    """``(file offset, path in payload, payload tensor)`` of every stored tensor. The
    file is mapped by ``torch.load(mmap=True)``: the loaded tensors' addresses, in the
    order of the zip records' data offsets, differ from them by the mapping's base
    address (checked)."""
    try:
        loaded = dict(_tensors(torch.load(path, map_location="cpu", weights_only=True, mmap=True)))
    except Exception as exc:  # a torch that cannot read back what skip_data wrote
        raise LayoutUnknown(f"{path}: cannot map the laid-out file ({type(exc).__name__}: {exc})") from None
    mine = _tensors(payload)
    by_ptr: dict[int, tuple[tuple, torch.Tensor]] = {}
    for where, t in mine:
        if t.untyped_storage().nbytes():
            if t.storage_offset() or not t.is_contiguous() or t.untyped_storage().nbytes() != t.numel() * t.element_size():
                raise LayoutUnknown(f"{path}: tensor {where} is a view; cannot be written record by record")
            by_ptr.setdefault(loaded[where].untyped_storage().data_ptr(), (where, t))
    with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
        starts = sorted(_data_start(f, i) for i in zf.infolist() if "/data/" in i.filename and i.file_size)
    ptrs = sorted(by_ptr)
    if len(starts) != len(ptrs) or len({p - s for p, s in zip(ptrs, starts)}) != 1:
        raise LayoutUnknown(f"{path}: cannot match the payload's {len(ptrs)} tensors to {len(starts)} records")
    return [(s, *by_ptr[p]) for p, s in zip(ptrs, starts)]


def _data_start(f, info: zipfile.ZipInfo) -> int:
    """Offset of a stored record's bytes: after its local header (whose name and extra
    field lengths may differ from the central directory's)."""
    f.seek(info.header_offset + 26)
    name_len, extra_len = struct.unpack("<HH", f.read(4))
    return info.header_offset + 30 + name_len + extra_len


def _write_records(path: str, records: list[tuple[int, tuple, torch.Tensor]],
                   sources: dict[str, tuple[str, Any]], chunk_bytes: int = 1 << 23) -> dict[int, int]:
    """``pwrite`` each tensor at its offset: a param of ``sources`` in its torch layout,
    a block of leading-dim rows at a time, any other tensor from memory. Returns
    ``{data offset: CRC-32}``.

    Blocks go through two reused buffers: while the main thread lays out the next
    block (numpy copy, GIL released), a writer thread writes the previous one and
    updates its record's CRC (``pwrite`` and ``zlib.crc32`` release the GIL too), in
    order. The only new memory is the file's page cache and the two buffers."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from matconv_port.layers.registry import PARAM_LAYOUTS

    crcs: dict[int, int] = {}
    with open(path, "r+b") as f, ThreadPoolExecutor(1, thread_name_prefix="matconv-port-write") as pool:
        fd = f.fileno()

        def write(data: memoryview, pos: int, record: int) -> None:
            done = 0
            while done < len(data):
                done += os.pwrite(fd, data[done:], pos + done)
            crcs[record] = zlib.crc32(data, crcs.get(record, 0))

        buffers: list[np.ndarray | None] = [None, None]
        in_use: list[Future | None] = [None, None]
        turn = 0

        def buffer(nbytes: int) -> np.ndarray:
            """A free buffer of at least ``nbytes`` (waits for its previous write)."""
            nonlocal turn
            turn ^= 1
            if in_use[turn] is not None:
                in_use[turn].result()
            if buffers[turn] is None or buffers[turn].nbytes < nbytes:
                buffers[turn] = np.empty(max(nbytes, chunk_bytes), np.uint8)
            return buffers[turn]

        def submit(buf: np.ndarray, pos: int, record: int) -> None:
            in_use[turn] = pool.submit(write, memoryview(buf).cast("B"), pos, record)

        for off, where, dst in records:
            name = where[1] if len(where) == 2 and where[0] == "params" else None
            if name not in sources:
                data = dst.contiguous().numpy()
                in_use[turn] = pool.submit(write, memoryview(data).cast("B"), off, off)
                in_use[turn].result()
                continue
            layout, value = sources.pop(name)
            np_dtype = dst.numpy().dtype
            src = PARAM_LAYOUTS[layout].view(np.asarray(value))
            del value
            shape = tuple(dst.shape)
            if src.shape != shape:
                raise ValueError(f"param {name!r}: torch shape {src.shape}, record of {shape}")
            row = max(1, int(np.prod(shape[1:], dtype=np.int64)) * np_dtype.itemsize)
            step = max(1, chunk_bytes // row)
            pos = off
            crcs[off] = 0
            for i in range(0, shape[0], step):
                part = src[i:i + step]  # a view: reshaping the strided whole would copy it
                nbytes = part.size * np_dtype.itemsize
                buf = buffer(nbytes)[:nbytes].view(np_dtype).reshape(part.shape)
                np.copyto(buf, part, casting="unsafe")
                submit(buf, pos, off)
                pos += nbytes
        for fut in in_use:
            if fut is not None:
                fut.result()
    if sources:
        raise ValueError(f"params not found in the payload: {sorted(sources)}")
    return crcs


def fill_zip_crcs(path: str, known: dict[int, int] | None = None, chunk: int = 1 << 22) -> int:
    """Write the CRC-32 of every non-empty record whose CRC is 0 (what ``skip_data``
    leaves): from ``known`` (data offset -> CRC) or computed from the file; returns
    how many records were patched. Works for records with a data descriptor (how
    PyTorch writes them) and without."""
    known = known or {}
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        central = zf.start_dir
    patched = 0
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "r+b") as f:
        pos = central
        for info in infos:
            f.seek(pos)
            head = f.read(46)
            if head[:4] != _CENTRAL_SIG:
                raise ValueError(f"{path}: unexpected zip central directory")
            n, e, c = struct.unpack_from("<HHH", head, 28)
            if info.CRC == 0 and info.file_size > 0:
                f.seek(info.header_offset + 26)
                name_len, extra_len = struct.unpack("<HH", f.read(4))
                start = info.header_offset + 30 + name_len + extra_len
                f.seek(start)
                crc, left = known.get(start, 0), (0 if start in known else info.file_size)
                while left:
                    got = f.readinto(view[:min(chunk, left)])
                    if not got:
                        raise ValueError(f"{path}: record {info.filename} is truncated")
                    crc = zlib.crc32(view[:got], crc)
                    left -= got
                end = start + info.file_size
                if info.flag_bits & 0x08:
                    f.seek(end)
                    at = end + 4 if f.read(4) == _DESCRIPTOR_SIG else end
                else:
                    at = info.header_offset + 14
                f.seek(at)
                f.write(struct.pack("<I", crc))
                f.seek(pos + 16)
                f.write(struct.pack("<I", crc))
                patched += 1
            pos += 46 + n + e + c
    return patched
