"""MATLAB/VLFeat arithmetic used by the sampling rules.

Expected values are derived by hand from the MATLAB/VLFeat definitions (documented
per test), not from the implementation.
"""
from __future__ import annotations

from matconv_port.eval.matlab import colon, colsubset_uniform, linspace, mround, padarray_symmetric_post


def test_round_half_away_from_zero():
    # MATLAB: round(0.5)=1, round(1.5)=2, round(2.5)=3, round(-2.5)=-3 (Python's round(2.5) == 2)
    assert [mround(v) for v in (0.5, 1.5, 2.5, 3.5, -0.5, -2.5, 2.4999, 2.5001)] == [1, 2, 3, 4, -1, -3, 2, 3]


def test_colon():
    assert colon(6, 15, 40) == [6, 21, 36]
    assert colon(6, 15, 5) == []          # 6:15:5 is empty
    assert colon(6, 0, 10) == []          # a zero step gives an empty vector in MATLAB
    assert colon(35, -15, 6) == [35, 20]  # 35:-15:6
    assert colon(6, 1, 6) == [6]


def test_linspace_endpoints_and_products_first():
    assert linspace(6, 6, 5) == [6.0] * 5
    assert linspace(1, 5, 1) == [5.0]     # linspace(a, b, 1) is b
    assert linspace(6, 10, 5) == [6.0, 7.0, 8.0, 9.0, 10.0]
    # linspace(1, 197, 25)(16) = 1 + 15*196/24 = 123.5 exactly when the product is formed
    # first (MATLAB); 1 + 15*(196/24) gives 123.49999999999999 and would round down.
    y = linspace(1, 197, 25)
    assert y[15] == 123.5 and mround(y[15]) == 124


def test_colsubset_uniform():
    # vl_colsubset(X, n, 'uniform') = X(round(linspace(1, m, min(m, n))))
    x = list(range(6, 26))                   # m = 20 < 25: everything
    assert colsubset_uniform(x, 25) == x
    x = list(range(6, 36))                   # m = 30, n = 25: positions round(1 + i*29/24)
    pos = [int((1 + i * 29 / 24) + 0.5) for i in range(25)]
    assert colsubset_uniform(x, 25) == [x[p - 1] for p in pos]
    assert colsubset_uniform([], 25) == []


def test_padarray_symmetric_post():
    # padarray([1 2 3], [0 8], 'symmetric', 'post') in Octave's image package: 1 2 3 3 2 1 1 2 3 3 2
    assert padarray_symmetric_post([1, 2, 3], 8) == [1, 2, 3, 3, 2, 1, 1, 2, 3, 3, 2]
    assert padarray_symmetric_post([4], 3) == [4, 4, 4, 4]
    assert padarray_symmetric_post([1, 5], 0) == [1, 5]
