"""The memory-lean conversion path gives exactly what the plain path gives:
streamed MAT v5 reading (one variable at a time, big arrays as views into the
inflated buffer) and the in-place MatConvNet -> torch filter layout change."""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import torch

from matconv_port.converters._mat5_read import read_mat5
from matconv_port.converters.matfile import mat_equal, mat_version, read_mat
from matconv_port.layers.registry import param_to_torch
from parity_utils import FIXTURES, REAL_MODELS

V5_FILES = sorted(p for p in glob.glob(os.path.join(FIXTURES, "**", "*.mat"), recursive=True))
V5_FILES += sorted(glob.glob(os.path.join(REAL_MODELS, "*.mat"))) if os.path.isdir(REAL_MODELS) else []


@pytest.mark.parametrize("path", [p for p in V5_FILES if mat_version(p) == "5"], ids=os.path.basename)
def test_streamed_reader_equals_whole_file_reader(path):
    with open(path, "rb") as f:
        whole = read_mat5(f.read())
    assert mat_equal(read_mat(path), whole)


@pytest.mark.parametrize("layout,shape", [
    ("filter2d", (3, 3, 4, 5)), ("filter2d", (7, 7, 2, 3)), ("filter2d", (1, 1, 6, 4)),
    ("filter2d", (5, 3, 2, 2)),  # not square: falls back to a copy
    ("filter2d", (3, 3, 4)),     # trailing singleton dropped by MATLAB
    ("filter3d", (3, 3, 3, 4, 2)), ("map", (2, 2, 5)),
])
def test_inplace_layout_change_equals_copy(layout, shape):
    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal(shape).astype(np.float32))
    expected = param_to_torch(layout, a.copy(order="F"))
    got = param_to_torch(layout, a, inplace=True)
    assert got.shape == expected.shape and torch.equal(got, expected)
