"""The neutral Python representation of MATLAB values (whatever the MAT version).

==========================  =====================================================
MATLAB                      Python
==========================  =====================================================
numeric / logical array     ``numpy.ndarray``, MATLAB's shape and index order
                            (at least 2-D, ``a[h, w, c, n]``), dtype kept
                            (single -> float32, logical -> bool, int8 -> int8 ...)
char row (1xN, or empty)    ``str``
char matrix (MxN, M > 1)    ``list[str]`` (one str per row)
1x1 struct                  ``dict`` (field order kept)
struct array (numel != 1)   :class:`MatStructArray` (column-major list of dicts)
cell array                  :class:`MatCell` (column-major list)
function handle, object,    :class:`MatOpaque` (never decoded; never fatal)
anything undecodable
==========================  =====================================================

Column-major order means element ``(i, j)`` of an ``M x N`` cell is item ``i + j*M``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np


def _shape_for(n: int, shape: Iterable[int] | None) -> tuple[int, ...]:
    if shape is None:
        return (1, n) if n != 0 else (0, 0)
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        shape = shape + (1,) * (2 - len(shape))
    if int(np.prod(shape)) != n:
        raise ValueError(f"shape {shape} does not hold {n} elements")
    return shape


class MatCell(list):
    """A MATLAB cell array: its elements in column-major order, plus ``.shape``.

    ``MatCell(["a", "b"])`` is a 1x2 cell; ``MatCell(items, shape=(2, 3))`` a 2x3 one.
    """

    def __init__(self, items: Iterable[Any] = (), shape: Iterable[int] | None = None):
        super().__init__(items)
        self.shape = _shape_for(len(self), shape)

    def __repr__(self) -> str:
        return f"MatCell({list.__repr__(self)}, shape={self.shape})"


class MatStructArray(list):
    """A MATLAB struct array with numel != 1: dicts in column-major order, ``.shape``
    and ``.fields`` (the field names, in order; kept even when the array is empty)."""

    def __init__(self, items: Iterable[dict] = (), shape: Iterable[int] | None = None,
                 fields: Iterable[str] | None = None):
        super().__init__(items)
        self.shape = _shape_for(len(self), shape)
        if fields is None:
            fields = list(self[0].keys()) if len(self) else []
        self.fields = list(fields)

    def __repr__(self) -> str:
        return f"MatStructArray({list.__repr__(self)}, shape={self.shape}, fields={self.fields})"


@dataclass(frozen=True)
class MatOpaque:
    """A value this reader does not decode (function handle, MCOS/classdef object,
    old-style object, ...). ``kind`` says what it is, ``info`` what is known of it."""

    kind: str
    info: str = ""

    def __str__(self) -> str:
        return f"<{self.kind}{': ' + self.info if self.info else ''}>"


def mat_equal(a: Any, b: Any) -> bool:
    """Deep equality of two neutral values (type, shape, dtype and content; NaN == NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.dtype.kind in "fc":
            return bool(np.array_equal(a, b, equal_nan=True))
        return bool(np.array_equal(a, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, MatStructArray):
        if a.shape != b.shape or a.fields != b.fields:
            return False
    if isinstance(a, MatCell) and a.shape != b.shape:
        return False
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(mat_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(mat_equal(x, y) for x, y in zip(a, b))
    return a == b
