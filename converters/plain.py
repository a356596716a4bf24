"""Neutral MATLAB values -> plain Python values for ``LayerSpec.block`` and ``NetSpec.meta``.

Rules (MATLAB numbers are doubles, so numbers become floats):

* numeric array with one element -> ``float`` (logical -> ``bool``); empty -> ``[]``;
  more elements -> flat ``list`` of floats (bools) in column-major order;
* char -> ``str`` (a char matrix -> ``list[str]``);
* cell -> ``list``; 1x1 struct -> ``dict``; struct array -> ``list[dict]``;
* :class:`MatOpaque` (function handles, objects) -> its ``str`` (e.g. ``"<function_handle: @(x)...>"``).

:func:`meta_to_plain` is the same but keeps arrays that are data rather than options
as ``numpy.ndarray`` (``averageImage``, anything with more than one non-singleton dim).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .mattypes import MatCell, MatOpaque, MatStructArray


def to_plain(value: Any) -> Any:
    """A neutral value as plain Python (see the module docstring)."""
    if isinstance(value, np.ndarray):
        return _array_to_plain(value)
    if isinstance(value, MatOpaque):
        return str(value)
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (MatCell, MatStructArray, list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, np.floating)):
        return float(value)
    return value


def _array_to_plain(arr: np.ndarray) -> Any:
    if arr.size == 0:
        return []
    flat = arr.reshape(-1, order="F")
    if arr.dtype == np.bool_:
        values = [bool(x) for x in flat]
    elif arr.dtype.kind == "c":
        values = [complex(x) for x in flat]
    elif arr.dtype.kind in "biuf":
        values = [float(x) for x in flat]
    else:
        values = [str(x) for x in flat]
    return values[0] if len(values) == 1 else values


def meta_to_plain(value: Any, key: str = "") -> Any:
    """Like :func:`to_plain`, but image-like data arrays stay ndarrays (``averageImage``
    always; any array with two or more non-singleton dims)."""
    if isinstance(value, np.ndarray):
        if value.size > 1 and value.dtype.kind in "biuf" and (
                key == "averageImage" or sum(d > 1 for d in value.shape) >= 2):
            return value
        if key == "averageImage" and value.size == 1:
            return value
        return _array_to_plain(value)
    if isinstance(value, dict):
        return {k: meta_to_plain(v, k) for k, v in value.items()}
    if isinstance(value, (MatCell, MatStructArray, list, tuple)):
        return [meta_to_plain(v) for v in value]
    return to_plain(value)
