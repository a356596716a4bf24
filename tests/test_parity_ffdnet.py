"""FFDNet's SimpleNN types ``SubP`` (pixel (un)shuffle, ``utilities/vl_nnSubP.m``) and ``concat``
(the noise-level map from the MATLAB global ``sigmas``, FFDNet's ``vl_simplenn.m``) against
outputs of FFDNet's own MATLAB code on stock MatConvNet v1.0-beta25 under Octave, made by
fixtures/ffdnet/run.sh (export_ffdnet_fixtures.m): every var of two small nets, and the real
FFDNet grayscale model (when ../shared/real_matconvnet_models has it)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import matconv_port
from matconv_port import from_matconvnet_layout
from matconv_port.converters.matfile import read_mat
from matconv_port.errors import ModelFormatError, ShapeError
from matconv_port.layers.base import ForwardContext
from matconv_port.netspec import LayerSpec, NetSpec, VarSpec
from matconv_port.network import MatConvNetModel
from parity_utils import FIXTURES, REAL_MODELS, RTOL_FP32, relative_error

FF = os.path.join(FIXTURES, "ffdnet")
SMALL = [os.path.join(FF, f) for f in ("ffdnet_subp2.mat", "ffdnet_subp3.mat")]
REAL = os.path.join(REAL_MODELS, "cszn_FFDNet__FFDNet_grayscale_retrained.mat")


def _4d(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    return a.reshape(a.shape + (1,) * (4 - a.ndim))


def _sigmas(data) -> torch.Tensor:
    return torch.as_tensor(np.asarray(data["sigmas"], dtype=np.float32).ravel())


@pytest.mark.parametrize("path", SMALL, ids=[os.path.basename(p) for p in SMALL])
def test_every_var_matches_ffdnet_vl_simplenn(path):
    data = read_mat(path)
    model = matconv_port.load_model(path)
    assert model.input_vars == ["x0", "sigmas"]
    assert [l.type for l in model.layer_specs][:2] == ["ffdnet.SubP", "ffdnet.SigmaConcat"]
    values = model.forward_vars({"x0": from_matconvnet_layout(_4d(data["input"])), "sigmas": _sigmas(data)})
    outputs = data["outputs"]
    assert len(outputs) >= 5
    for key, ref in outputs.items():
        var = key.split("_")[0]
        assert relative_error(values[var], _4d(ref)) <= RTOL_FP32, key


@pytest.mark.skipif(not os.path.isfile(REAL), reason=f"{REAL} not present")
def test_real_ffdnet_matches_matconvnet():
    data = read_mat(os.path.join(FF, "ffdnet_real_gray.mat"))
    model = matconv_port.load_model(REAL)
    with torch.no_grad():
        values = model.forward_vars({"x0": from_matconvnet_layout(_4d(data["input"])), "sigmas": _sigmas(data)})
    for var, ref in data["outputs"].items():
        assert relative_error(values[var], _4d(ref)) <= RTOL_FP32, var


def _net(ltype: str, block: dict, inputs=("x",)) -> NetSpec:
    return NetSpec(layers=[LayerSpec("lay", ltype, list(inputs), ["y"], [], block)],
                   vars=[VarSpec(v) for v in list(inputs) + ["y"]], source="t.mat")


def test_subp_is_matlab_index_arithmetic():
    """Independent of the fixtures: vl_nnSubP's loops, written out with numpy on H x W x C x N."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4, 2, 3)).astype(np.float32)
    s = 2
    down = np.zeros((3, 2, 8, 3), np.float32)
    for c in range(2):
        for i in range(1, s * s + 1):
            a, b = (i - 1) % s + 1, (i - 1) // s + 1
            down[:, :, c * s * s + i - 1, :] = x[a - 1::s, b - 1::s, c, :]
    t = from_matconvnet_layout(x)
    y = MatConvNetModel(_net("ffdnet.SubP", {"scale": 0.5})).forward_vars({"x": t})["y"]
    assert torch.equal(y, from_matconvnet_layout(down))
    back = MatConvNetModel(_net("ffdnet.SubP", {"scale": 2.0})).forward_vars({"x": y})["y"]
    assert torch.equal(back, t)


@pytest.mark.parametrize("ltype,block,inputs,needle", [
    ("ffdnet.SubP", {"scale": 1.5}, ("x",), "must be an integer"),
    ("ffdnet.SubP", {"scale": [2.0, 2.0]}, ("x",), "one positive number"),
    ("ffdnet.SigmaConcat", {}, ("x",), "needs the features and the noise level"),
])
def test_bad_layers_are_refused_naming_the_layer(ltype, block, inputs, needle):
    with pytest.raises(ModelFormatError) as info:
        MatConvNetModel(_net(ltype, block, inputs))
    assert "'lay'" in str(info.value) and needle in str(info.value)


def test_sizes_that_do_not_divide_are_shape_errors():
    ctx = ForwardContext(num_videos=1)
    down = MatConvNetModel(_net("ffdnet.SubP", {"scale": 0.5}))
    with pytest.raises(ShapeError, match="'lay'.*must divide by 2"):
        down.layers[0].output_shapes([(1, 1, 5, 4)], [], ctx)
    up = MatConvNetModel(_net("ffdnet.SubP", {"scale": 2.0}))
    with pytest.raises(ShapeError, match="'lay'.*3 channels do not divide by scale\\^2 = 4"):
        up.layers[0].output_shapes([(1, 3, 5, 4)], [], ctx)
    cat = MatConvNetModel(_net("ffdnet.SigmaConcat", {}, ("x", "s")))
    with pytest.raises(ShapeError, match="'lay'.*sigmas holds 2 values"):
        cat.layers[0].output_shapes([(3, 4, 5, 5), (2, 1, 1, 1)], [], ctx)
