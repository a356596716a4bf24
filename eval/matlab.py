"""MATLAB/VLFeat arithmetic the original sampling code relies on, re-implemented.

Everything here follows MATLAB semantics, not Python's:

* :func:`mround` rounds half away from zero (MATLAB ``round``), not half to even.
* :func:`colon` is ``a:step:b`` (inclusive end, empty when the step is 0 or points
  away from ``b``).
* :func:`linspace` is MATLAB's ``linspace(d1, d2, n)``: ``d1 + (i*(d2-d1))/(n-1)``
  (multiplication before division) with the end points set exactly; ``n == 1``
  gives ``[d2]``.
* :func:`colsubset_uniform` is VLFeat's ``vl_colsubset(X, n, 'uniform')``:
  ``X(round(linspace(1, m, min(m, n))))``.
* :func:`padarray_symmetric_post` is ``padarray(x, [0 d], 'symmetric', 'post')`` on a
  row vector: the signal is mirrored *including* its edge sample and repeats with
  period ``2*len(x)`` when ``d`` exceeds the length.

All index values are MATLAB's (1-based) frame numbers; the functions just compute
with them.
"""
from __future__ import annotations

import math
from typing import Sequence

__all__ = ["mround", "colon", "linspace", "colsubset_uniform", "padarray_symmetric_post"]


def mround(x: float) -> int:
    """MATLAB ``round``: half away from zero (``round(2.5) == 3``, ``round(-2.5) == -3``)."""
    if x >= 0:
        return int(math.floor(x + 0.5))
    return -int(math.floor(-x + 0.5))


def colon(a: int, step: int, b: int) -> list[int]:
    """MATLAB ``a:step:b`` for integer operands, as a list of ints.

    Empty when ``step == 0``, or when ``step > 0 and a > b``, or ``step < 0 and a < b``.
    """
    if step == 0 or (step > 0 and a > b) or (step < 0 and a < b):
        return []
    a, step, b = int(a), int(step), int(b)
    count = (b - a) // step + 1
    return [a + i * step for i in range(count)]


def linspace(d1: float, d2: float, n: int) -> list[float]:
    """MATLAB ``linspace(d1, d2, n)`` (``n`` points, ends exact).

    Interior points are ``d1 + (i * (d2 - d1)) / (n - 1)``, the product formed before
    the division as MATLAB does; this matters where ``round`` meets an exact .5.
    """
    n = int(math.floor(n))
    if n < 1:
        return []
    if n == 1:
        return [float(d2)]
    n1 = n - 1
    y = [d1 + (i * (d2 - d1)) / n1 for i in range(n)]
    if d1 == d2:
        return [float(d1)] * n
    y[0] = float(d1)
    y[-1] = float(d2)
    return y


def colsubset_uniform(x: Sequence[int], n: int) -> list[int]:
    """VLFeat ``vl_colsubset(x, n, 'uniform')`` for a row vector ``x``.

    Selects ``min(len(x), n)`` entries at the 1-based positions
    ``round(linspace(1, len(x), min(len(x), n)))``; empty input gives ``[]``.
    """
    m = len(x)
    k = min(m, int(n))
    if k < 1:
        return []
    return [int(x[mround(p) - 1]) for p in linspace(1, m, k)]


def padarray_symmetric_post(x: Sequence[int], d: int) -> list[int]:
    """``padarray(x, [0 d], 'symmetric', 'post')`` for a non-empty row vector ``x``.

    The padded tail reads ``x`` backwards from its last element (edge repeated), then
    forwards again, and so on: the index pattern ``[1..L, L..1]`` repeated.
    """
    L = len(x)
    if L == 0:
        raise ValueError("padarray of an empty vector")
    pattern = list(range(L)) + list(range(L - 1, -1, -1))
    return [int(x[pattern[i % (2 * L)]]) for i in range(L + int(d))]
