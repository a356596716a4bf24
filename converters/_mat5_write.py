"""Neutral values -> the objects ``scipy.io.savemat`` writes as the right MATLAB types
(MAT -v7: compressed, long field names)."""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.io

from .mattypes import MatCell, MatOpaque, MatStructArray


def _column_major(items: list, shape: tuple, dtype: Any) -> np.ndarray:
    flat = np.empty(len(items), dtype=dtype)
    for i, item in enumerate(items):
        flat[i] = item
    return flat.reshape(shape, order="F")


def to_scipy(value: Any) -> Any:
    """Convert one neutral value to what scipy.io.savemat writes as the same MATLAB value."""
    if isinstance(value, MatStructArray):
        fields = list(value.fields)
        if not fields:  # scipy cannot write a field-less struct array: closest is []
            return np.zeros(value.shape) if len(value) == 0 else _column_major(
                [{}] * len(value), value.shape, object)
        dtype = [(f, object) for f in fields]
        flat = np.empty(len(value), dtype=dtype)
        for i, item in enumerate(value):
            for f in fields:
                flat[f][i] = to_scipy(item.get(f, np.zeros((0, 0))))
        return flat.reshape(value.shape, order="F")
    if isinstance(value, MatCell):
        return _column_major([to_scipy(v) for v in value], value.shape, object)
    if isinstance(value, dict):
        if not value:
            return {}
        rec = np.empty((1, 1), dtype=[(str(k), object) for k in value])
        for k, v in value.items():
            rec[str(k)][0, 0] = to_scipy(v)
        return rec
    if isinstance(value, str):
        return np.str_(value) if value else np.zeros((0, 0), dtype="U1")
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        width = max(len(v) for v in value)
        return np.array([v.ljust(width) for v in value], dtype=f"U{max(width, 1)}")
    if isinstance(value, (list, tuple)):
        return _column_major([to_scipy(v) for v in value], (1, len(value)) if value else (0, 0), object)
    if isinstance(value, MatOpaque) or value is None:
        return np.zeros((0, 0))
    if isinstance(value, (bool, np.bool_)):
        return np.array([[bool(value)]])
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, np.ndarray):
        if isinstance(value, (np.integer, np.floating)):
            return np.array([[value]])
        return np.array([[float(value)]])
    arr = np.asarray(value)
    if arr.ndim < 2:
        arr = arr.reshape((1,) * (2 - arr.ndim) + arr.shape) if arr.ndim == 0 else arr.reshape(1, -1)
    return arr


def write_mat5(path: str, variables: dict[str, Any]) -> None:
    """Write ``variables`` as a compressed MAT -v7 file at ``path`` (not atomic by itself)."""
    converted = {name: to_scipy(v) for name, v in variables.items()}
    with open(path, "wb") as fh:
        scipy.io.savemat(fh, converted, do_compression=True, long_field_names=True, oned_as="row")
