"""Neutral values -> a MATLAB -v7.3 MAT file (HDF5 in MATLAB's own layout).

The layout written is the one MATLAB writes (see ``_mat73_read`` for the reading
side): a 512-byte user block starting with MATLAB's 128-byte text header, variables at
the root with ``MATLAB_class``; arrays stored with the reversed shape (so the bytes are
MATLAB's column-major order); chars as uint16 (``MATLAB_int_decode=2``); logicals as
uint8 (``MATLAB_int_decode=1``); empties as their dims with ``MATLAB_empty=1``; cells and
struct-array fields as datasets of references into ``#refs#``.
"""
from __future__ import annotations

import datetime
import platform
from typing import Any

import h5py
import numpy as np

from .mattypes import MatCell, MatOpaque, MatStructArray

USERBLOCK = 512
_CLASS_OF_DTYPE = {np.dtype(np.float64): "double", np.dtype(np.float32): "single",
                   np.dtype(np.int8): "int8", np.dtype(np.uint8): "uint8",
                   np.dtype(np.int16): "int16", np.dtype(np.uint16): "uint16",
                   np.dtype(np.int32): "int32", np.dtype(np.uint32): "uint32",
                   np.dtype(np.int64): "int64", np.dtype(np.uint64): "uint64",
                   np.dtype(np.bool_): "logical"}
_REF_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def matlab_header(platform_name: str | None = None) -> bytes:
    """MATLAB's 128-byte v7.3 header (text, subsystem offset 0, version 0x0200, 'IM')."""
    plat = platform_name or {"Linux": "GLNXA64", "Darwin": "MACI64", "Windows": "PCWIN64"}.get(
        platform.system(), "GLNXA64")
    now = datetime.datetime.now().strftime("%a %b %d %H:%M:%S %Y")
    text = f"MATLAB 7.3 MAT-file, Platform: {plat}, Created on: {now} HDF5 schema 1.00 ."
    return text.encode("ascii").ljust(116, b" ")[:116] + b"\0" * 8 + b"\x00\x02" + b"IM"


def _set_class(obj: h5py.HLObject, cls: str) -> None:
    obj.attrs.create("MATLAB_class", np.bytes_(cls))


def _set_fields(obj: h5py.HLObject, fields: list[str]) -> None:
    data = np.empty(len(fields), dtype=object)
    for i, f in enumerate(fields):
        data[i] = np.frombuffer(f.encode("latin-1"), dtype="S1")
    obj.attrs.create("MATLAB_fields", data, dtype=h5py.vlen_dtype(np.dtype("S1")))


class _Writer73:
    def __init__(self, f: h5py.File):
        self.f = f
        self.refs = f.require_group("#refs#")
        self.counter = 0

    def _ref_name(self) -> str:
        n, name = self.counter, ""
        self.counter += 1
        while True:
            name = _REF_ALPHABET[n % len(_REF_ALPHABET)] + name
            n //= len(_REF_ALPHABET)
            if n == 0:
                return name

    def ref_to(self, value: Any) -> h5py.Reference:
        name = self._ref_name()
        self.write(self.refs, name, value)
        return self.refs[name].ref

    def _empty(self, parent: h5py.Group, name: str, cls: str, dims: tuple) -> h5py.Dataset:
        ds = parent.create_dataset(name, data=np.asarray(dims, dtype=np.uint64))
        _set_class(ds, cls)
        ds.attrs.create("MATLAB_empty", np.uint8(1))
        return ds

    def _refs_dataset(self, parent: h5py.Group, name: str, values: list, shape: tuple) -> h5py.Dataset:
        refs = np.empty(len(values), dtype=h5py.ref_dtype)
        for i, v in enumerate(values):
            refs[i] = self.ref_to(v)
        # column-major MATLAB shape -> HDF5 holds the reversed shape in C order
        data = refs.reshape(shape, order="F").transpose()
        return parent.create_dataset(name, data=data, dtype=h5py.ref_dtype)

    def write(self, parent: h5py.Group, name: str, value: Any) -> None:
        if isinstance(value, MatStructArray):
            return self._struct_array(parent, name, value)
        if isinstance(value, MatCell):
            if len(value) == 0:
                self._empty(parent, name, "cell", value.shape)
                return
            ds = self._refs_dataset(parent, name, list(value), value.shape)
            _set_class(ds, "cell")
            return
        if isinstance(value, dict):
            if not value:
                self._empty(parent, name, "struct", (1, 1))
                return
            g = parent.create_group(name)
            _set_class(g, "struct")
            _set_fields(g, [str(k) for k in value])
            for k, v in value.items():
                self.write(g, str(k), v)
            return
        if isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            return self._char(parent, name, value)
        if isinstance(value, (list, tuple)):
            return self.write(parent, name, MatCell(list(value)))
        if value is None or isinstance(value, MatOpaque):
            self._empty(parent, name, "double", (0, 0))
            return
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"cannot write a value of type {type(value).__name__} ({arr.dtype}) as {name!r}")
        if arr.ndim < 2:
            arr = arr.reshape((1,) * (2 - arr.ndim) + arr.shape) if arr.ndim == 0 else arr.reshape(1, -1)
        cls = _CLASS_OF_DTYPE.get(arr.dtype.newbyteorder("="))
        if cls is None:
            arr = arr.astype(np.float64)
            cls = "double"
        if arr.size == 0:
            self._empty(parent, name, cls, arr.shape)
            return
        stored = arr.astype(np.uint8) if cls == "logical" else arr
        # C-order bytes of the reversed shape = MATLAB column-major bytes (no copy if F-contiguous)
        ds = parent.create_dataset(name, data=np.ascontiguousarray(stored.transpose()))
        _set_class(ds, cls)
        if cls == "logical":
            ds.attrs.create("MATLAB_int_decode", np.int32(1))

    def _char(self, parent: h5py.Group, name: str, value: str | list[str]) -> None:
        rows = [value] if isinstance(value, str) else list(value)
        width = max(len(r) for r in rows)
        if width == 0:
            self._empty(parent, name, "char", (len(rows) if len(rows) > 1 else 0, 0))
            return
        codes = np.array([[ord(c) for c in r.ljust(width)] for r in rows], dtype=np.uint16)
        ds = parent.create_dataset(name, data=codes.transpose())
        _set_class(ds, "char")
        ds.attrs.create("MATLAB_int_decode", np.int32(2))

    def _struct_array(self, parent: h5py.Group, name: str, value: MatStructArray) -> None:
        fields = list(value.fields)
        if len(value) == 0 or not fields:
            ds = self._empty(parent, name, "struct", value.shape)
            if fields:
                _set_fields(ds, fields)
            return
        g = parent.create_group(name)
        _set_class(g, "struct")
        _set_fields(g, fields)
        for f in fields:
            self._refs_dataset(g, f, [item.get(f, np.zeros((0, 0))) for item in value], value.shape)


def write_mat73(path: str, variables: dict[str, Any]) -> None:
    """Write ``variables`` as a MATLAB v7.3 file at ``path`` (not atomic by itself)."""
    with h5py.File(path, "w", userblock_size=USERBLOCK, libver="earliest", track_order=True) as f:
        writer = _Writer73(f)
        for name, value in variables.items():
            writer.write(f, name, value)
        if len(f["#refs#"]) == 0:
            del f["#refs#"]
    with open(path, "r+b") as fh:
        fh.write(matlab_header())
