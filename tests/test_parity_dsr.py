"""Sunbaoli/DSR's own ``dagnn.Slice`` (``code/+dagnn/Slice.m``: ``x(:,:,2,:) > thres``, a
class unrelated to mcnExtraLayers' Slice of the same name) against outputs of that MATLAB
class run in stock MatConvNet v1.0-beta25 under Octave, made by fixtures/dsr/run.sh
(export_dsr_fixtures.m): every var of a small net, and the real DSR x16 model (when
../shared/real_matconvnet_models has it) on the vars the fixture kept."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import matconv_port
from matconv_port.converters.matfile import read_mat
from matconv_port.errors import ModelFormatError, ShapeError
from matconv_port.export import export_matconvnet
from matconv_port.layers.base import ForwardContext
from matconv_port.netspec import LayerSpec, NetSpec, VarSpec
from matconv_port.network import MatConvNetModel
from parity_utils import FIXTURES, REAL_MODELS, RTOL_FP32, load_case, relative_error

DSR = os.path.join(FIXTURES, "dsr")
SMALL = os.path.join(DSR, "dsr_slice.mat")
REAL = os.path.join(REAL_MODELS, "Sunbaoli_DSR__x16_net-epoch-108.mat")


def test_every_var_matches_dsr_slice_in_matconvnet():
    case = load_case(SMALL)
    model = matconv_port.load_model(SMALL)
    assert {l.block.get("thres") for l in model.layer_specs if l.type == "dagnn.Slice"} == {0.1, 0.2, 0.5}
    values = model.forward_vars(dict(case.inputs), num_videos=case.num_videos)
    assert len(case.expected) == 8
    for name, ref in case.expected.items():
        assert relative_error(values[name], ref) <= RTOL_FP32, name
    for name in ("edge", "edge2", "edge3"):  # logical maps, both values present
        ref = np.asarray(case.expected[name])
        assert ref.dtype == np.uint8 and set(np.unique(ref)) == {0, 1}, name
        assert torch.equal(values[name], matconv_port.from_matconvnet_layout(ref.astype(np.float32))), name


@pytest.mark.skipif(not os.path.isfile(REAL), reason=f"{REAL} not present")
def test_real_dsr_x16_matches_matconvnet():
    data = read_mat(os.path.join(DSR, "dsr_real_x16.mat"))
    model = matconv_port.load_model(REAL, warn=lambda m: None)
    inputs = {k: matconv_port.from_matconvnet_layout(np.asarray(data[k], np.float32).reshape(24, 20, 1, 1))
              for k in ("input_d", "input_g")}
    with torch.no_grad():
        values = model.forward_vars(inputs)
    assert np.asarray(data["outputs"]["edge"]).sum() > 50  # the thresholded map is not trivial
    for name, ref in data["outputs"].items():
        ref = np.asarray(ref)
        assert relative_error(values[name], ref.reshape(ref.shape + (1,) * (4 - ref.ndim))) <= RTOL_FP32, name


def test_export_round_trip_keeps_the_dsr_class(tmp_path):
    model = matconv_port.load_model(SMALL)
    out = str(tmp_path / "net.mat")
    export_matconvnet(model, out)
    blocks = {l["name"]: l["block"] for l in read_mat(out)["net"]["layers"]}
    assert list(blocks["slice"]) == ["dim", "thres"] and blocks["slice"]["thres"].tolist() == [[0.1]]
    back = matconv_port.load_model(out)
    case = load_case(SMALL)
    a = model.forward_vars(dict(case.inputs), num_videos=case.num_videos)
    b = back.forward_vars(dict(case.inputs), num_videos=case.num_videos)
    for name in case.expected:
        assert torch.equal(a[name], b[name]), name


def _net(block: dict, outputs: int = 1) -> NetSpec:
    outs = [f"y{k}" for k in range(outputs)]
    return NetSpec(layers=[LayerSpec("lay", "dagnn.Slice", ["x"], outs, [], block)],
                   vars=[VarSpec(v) for v in ["x"] + outs], source="t.mat")


@pytest.mark.parametrize("block,outputs,needle", [
    ({"dim": 3.0, "thres": 0.1, "slicePoint": 2.0}, 2, "both 'thres'"),
    ({"dim": 3.0, "thres": 0.1}, 2, "has one output, the layer has 2"),
    ({"dim": 3.0, "thres": [0.1, 0.2]}, 1, "thres must be one number"),
])
def test_bad_dsr_slices_are_refused_naming_the_layer(block, outputs, needle):
    with pytest.raises(ModelFormatError) as info:
        MatConvNetModel(_net(block, outputs))
    assert "'lay'" in str(info.value) and needle in str(info.value)


def test_dsr_slice_needs_a_second_channel_and_passes_no_gradient():
    model = MatConvNetModel(_net({"dim": 3.0, "thres": 0.2}))
    with pytest.raises(ShapeError, match="'lay'.*reads channel 2"):
        model.layers[0].output_shapes([(1, 1, 4, 4)], [], ForwardContext(num_videos=1))
    x = torch.rand(2, 3, 4, 5, requires_grad=True)
    y = model.forward_vars({"x": x})["y0"]
    assert torch.equal(y, (x[:, 1:2] > 0.2).float()) and not y.requires_grad  # Slice.m's backward: zero
