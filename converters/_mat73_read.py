"""A reader for MATLAB -v7.3 MAT files (HDF5 with MATLAB's layout) into the neutral
representation.

MATLAB's layout, as found in real files:

* every variable is a dataset or group at the root with a ``MATLAB_class`` attribute;
  ``#refs#`` holds values reached through object references, ``#subsystem#`` the MCOS
  subsystem data (skipped);
* numeric/logical arrays are datasets in HDF5 (C) order of the REVERSED MATLAB shape:
  transposing gives MATLAB's shape back; logicals are uint8 with ``MATLAB_int_decode=1``;
* chars are uint16 with ``MATLAB_class='char'`` (``MATLAB_int_decode=2``);
* empty values are a 1-D uint64 dataset holding the MATLAB dims, with ``MATLAB_empty=1``
  (a field-less 1x1 struct, ``struct()``, is stored that way with dims ``[1 1]``);
* a 1x1 struct is a group (fields = members, order in the ``MATLAB_fields`` attribute);
  a struct ARRAY is a group whose members are datasets of object references without a
  ``MATLAB_class`` (one reference per element, into ``#refs#``);
* a cell is a dataset of references with ``MATLAB_class='cell'``;
* objects (classdef/MCOS, e.g. ``gpuArray``), function handles: ``MATLAB_object_decode``
  or a ``function_handle`` class -> :class:`MatOpaque`.

Values are decoded when reached; no h5py object survives the read.
"""
from __future__ import annotations

import os
from typing import Any

import h5py
import numpy as np

from ._mat5_read import chars_to_python
from .mattypes import MatCell, MatOpaque, MatStructArray

_NUMERIC = {"double": np.float64, "single": np.float32, "int8": np.int8, "uint8": np.uint8,
            "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32,
            "int64": np.int64, "uint64": np.uint64, "logical": np.bool_}


def _attr_str(obj: h5py.HLObject, name: str) -> str | None:
    value = obj.attrs.get(name)
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size else b""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def _field_names(group: h5py.Group) -> list[str]:
    raw = group.attrs.get("MATLAB_fields")
    if raw is None:
        return [k for k in group.keys()]
    names = []
    for item in raw:
        names.append(b"".join(np.asarray(item, dtype="S1").tolist()).decode("latin-1"))
    return names


def _matlab_shape(ds: h5py.Dataset) -> tuple[int, ...]:
    shape = tuple(reversed(ds.shape))
    return shape + (1,) * (2 - len(shape)) if len(shape) < 2 else shape


def _to_matlab_order(arr: np.ndarray) -> np.ndarray:
    """h5py's C-order array of the reversed shape -> MATLAB index order (a view if possible)."""
    arr = np.asarray(arr)
    if arr.ndim < 2:
        arr = arr.reshape((1,) * (2 - arr.ndim) + arr.shape)
    return arr.transpose()


class _Reader73:
    def __init__(self, f: h5py.File, map_min_bytes: int | None = None):
        self.f = f
        self.map_min_bytes = map_min_bytes
        self.file_size = os.path.getsize(f.filename) if map_min_bytes is not None else 0

    def _mapped(self, ds: h5py.Dataset, cls: str | None) -> np.ndarray | None:
        """A read-only memory map of the file's bytes of a numeric dataset of at least
        ``map_min_bytes`` stored contiguously, uncompressed, in the class's own native
        type; None otherwise (the dataset is then read as usual)."""
        if self.map_min_bytes is None or cls not in _NUMERIC or cls == "logical":
            return None
        dt = np.dtype(_NUMERIC[cls])
        if ds.dtype != dt or not dt.isnative or ds.chunks is not None or ds.compression is not None \
                or getattr(ds, "external", None) or ds.size * dt.itemsize < self.map_min_bytes:
            return None
        offset = ds.id.get_offset()
        if offset is None or offset + ds.size * dt.itemsize > self.file_size:
            return None
        return np.asarray(np.memmap(self.f.filename, dtype=dt, mode="r", offset=offset, shape=ds.shape))

    def value(self, obj: h5py.HLObject) -> Any:
        if isinstance(obj, h5py.Group):
            return self.group(obj)
        return self.dataset(obj)

    def deref(self, ref: h5py.Reference) -> Any:
        if not ref:
            return np.zeros((0, 0))
        return self.value(self.f[ref])

    def group(self, g: h5py.Group) -> Any:
        cls = _attr_str(g, "MATLAB_class") or "struct"
        if cls == "function_handle":
            return MatOpaque("function_handle", "function handle")
        if cls != "struct":
            return MatOpaque("object", cls)
        fields = _field_names(g)
        members = {k: g[k] for k in fields if k in g}
        is_array = bool(members) and all(
            isinstance(m, h5py.Dataset) and m.dtype == h5py.ref_dtype and "MATLAB_class" not in m.attrs
            for m in members.values())
        if not is_array:
            return {k: (self.value(members[k]) if k in members else np.zeros((0, 0))) for k in fields}
        first = next(iter(members.values()))
        shape = _matlab_shape(first)
        refs = {k: _to_matlab_order(m[()]).reshape(-1, order="F") for k, m in members.items()}
        n = int(np.prod(shape))
        items = [{k: (self.deref(refs[k][i]) if k in refs else np.zeros((0, 0))) for k in fields}
                 for i in range(n)]
        if n == 1:
            return items[0]
        return MatStructArray(items, shape=shape, fields=fields)

    def dataset(self, ds: h5py.Dataset) -> Any:
        cls = _attr_str(ds, "MATLAB_class")
        if "MATLAB_object_decode" in ds.attrs or cls in ("function_handle",):
            return MatOpaque("function_handle" if cls == "function_handle" else "object", cls or "object")
        if ds.attrs.get("MATLAB_empty", 0):
            dims = tuple(int(d) for d in np.asarray(ds[()]).reshape(-1)) if ds.shape else (0, 0)
            dims = dims + (0,) * (2 - len(dims)) if len(dims) < 2 else dims
            return self._empty(cls, dims, ds)
        if cls == "cell":
            refs = _to_matlab_order(ds[()])
            return MatCell([self.deref(r) for r in refs.reshape(-1, order="F")], shape=refs.shape)
        if cls == "char":
            data = _to_matlab_order(ds[()])
            return chars_to_python(data.reshape(-1, order="F"), data.shape)
        if cls == "struct":  # a struct stored as a dataset without the empty flag: unexpected
            return MatOpaque("struct", "undecodable struct dataset")
        if cls is None and ds.dtype == h5py.ref_dtype:
            refs = _to_matlab_order(ds[()])
            return MatCell([self.deref(r) for r in refs.reshape(-1, order="F")], shape=refs.shape)
        if ds.attrs.get("MATLAB_sparse") is not None:
            return MatOpaque("sparse", "sparse matrices are not decoded in v7.3 files")
        mapped = self._mapped(ds, cls)
        if mapped is not None:
            return _to_matlab_order(mapped)
        data = ds[()]
        if data.dtype.names and set(data.dtype.names) >= {"real", "imag"}:
            data = data["real"] + 1j * data["imag"]
        elif cls in _NUMERIC:
            data = np.asarray(data).astype(_NUMERIC[cls], copy=False)
        elif cls is not None and data.dtype.kind not in "biuf":
            return MatOpaque("unknown", f"MATLAB class {cls}")
        return np.ascontiguousarray(_to_matlab_order(data)) if data.ndim <= 1 else _to_matlab_order(data)

    def _empty(self, cls: str | None, dims: tuple, ds: h5py.Dataset) -> Any:
        n = int(np.prod(dims))
        if cls == "cell":
            return MatCell([np.zeros((0, 0))] * n, shape=dims)
        if cls == "char":
            return chars_to_python(np.zeros(n, dtype=np.uint32), dims)
        if cls == "struct":
            fields = []
            if "MATLAB_fields" in ds.attrs:
                fields = [b"".join(np.asarray(i, dtype="S1").tolist()).decode("latin-1")
                          for i in ds.attrs["MATLAB_fields"]]
            if n == 1:
                return {f: np.zeros((0, 0)) for f in fields}
            return MatStructArray([{f: np.zeros((0, 0)) for f in fields} for _ in range(n)],
                                  shape=dims, fields=fields)
        return np.zeros(dims, dtype=_NUMERIC.get(cls or "double", np.float64))


def read_mat73(f: h5py.File, map_min_bytes: int | None = None) -> dict[str, Any]:
    """Decode every MATLAB variable of an open v7.3 file. With ``map_min_bytes``,
    numeric arrays of at least that many bytes stored contiguously and uncompressed
    come back as READ-ONLY memory maps of the file (no copy: for a reader that only
    copies them elsewhere, such as ``convert``)."""
    reader = _Reader73(f, map_min_bytes)
    out: dict[str, Any] = {}
    for name in f.keys():
        if name.startswith("#"):
            continue
        out[name] = reader.value(f[name])
    return out
