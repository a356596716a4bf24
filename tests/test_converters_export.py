"""netspec_to_dagnn_struct: NetSpec -> saveobj struct -> write_mat -> load_netspec is the identity
(checked once by hand against the original dagnn.DagNN.loadobj + eval under Octave: bitwise equal
outputs for simplenn_chain_a)."""
from __future__ import annotations

import os

import numpy as np
import pytest
from matconv_port.converters import load_netspec, mat_equal, write_mat
from matconv_port.converters.to_dagnn import matlab_value, netspec_to_dagnn_struct
from parity_utils import FIXTURES, REAL_MODELS

REF_DIR = os.path.join(FIXTURES, "reference")
REAL = os.path.join(REAL_MODELS, "cszn_DnCNN__DnCNN-epoch-50.mat")


def _same(a, b):
    assert [(l.name, l.type, l.inputs, l.outputs, l.params, l.block) for l in a.layers] == \
           [(l.name, l.type, l.inputs, l.outputs, l.params, l.block) for l in b.layers]
    assert [(v.name, v.precious) for v in a.vars] == [(v.name, v.precious) for v in b.vars]
    assert list(a.params) == list(b.params)
    for k, p in a.params.items():
        q = b.params[k]
        assert mat_equal(np.asarray(p.value), np.asarray(q.value)), k
        assert (p.learning_rate, p.weight_decay) == (q.learning_rate, q.weight_decay)
    assert set(a.meta) == set(b.meta)


@pytest.mark.parametrize("name", ["simplenn_chain_a.mat", "dagnn_misc_a.mat", "fusion_twostream_vgg16narrow_a.mat"])
@pytest.mark.parametrize("version", ["7", "7.3"])
def test_export_reload_identity(tmp_path, name, version):
    spec = load_netspec(os.path.join(REF_DIR, name))
    path = str(tmp_path / "out.mat")
    write_mat(path, {"net": netspec_to_dagnn_struct(spec)}, version=version)
    back = load_netspec(path)
    assert back.source_format == "dagnn"
    _same(spec, back)
    if "normalization" in spec.meta and "averageImage" in spec.meta["normalization"]:
        np.testing.assert_array_equal(back.meta["normalization"]["averageImage"],
                                      spec.meta["normalization"]["averageImage"])


@pytest.mark.skipif(not os.path.exists(REAL), reason=f"{REAL} not present")
def test_export_real_v73_dagnn(tmp_path):
    spec = load_netspec(REAL)
    path = str(tmp_path / "dncnn.mat")
    write_mat(path, {"net": netspec_to_dagnn_struct(spec)}, version="7")
    _same(spec, load_netspec(path))


def test_matlab_value_types():
    assert matlab_value(True).dtype == np.bool_
    assert matlab_value([1.0, 2.0]).shape == (1, 2)
    assert matlab_value([], "opts").__class__.__name__ == "MatCell"
    assert matlab_value([]).shape == (0, 0)
    assert matlab_value(["cuDNN", 3.0])[1].shape == (1, 1)
