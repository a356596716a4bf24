"""The mcnExtraLayers types (dagnn.Flatten, GlobalPooling, Axpy, Permute, Reshape, Slice) against
outputs of mcnExtraLayers' OWN MATLAB code (albanie/mcnExtraLayers @6a054ef, its
+dagnn classes and vl_nn*.m, on stock MatConvNet v1.0-beta25 under Octave), made by
fixtures/mcn_extra/run.sh (export_fixtures.m): every var of every file, the shape
arithmetic, the converted-file round trip, and refusals of options the originals
cannot run."""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import torch

import matconv_port
from matconv_port.errors import MatConvPortError, ModelFormatError, ShapeError
from matconv_port.layers.base import ForwardContext
from matconv_port.network import MatConvNetModel
from matconv_port.netspec import LayerSpec, NetSpec, VarSpec
from parity_utils import FIXTURES, RTOL_FP32, load_case, relative_error

FILES = sorted(glob.glob(os.path.join(FIXTURES, "mcn_extra", "mcnextra_*.mat")))
TYPES = {"dagnn.Flatten", "dagnn.GlobalPooling", "dagnn.Axpy", "dagnn.Permute", "dagnn.Reshape", "dagnn.Slice"}


def test_fixtures_cover_every_type_and_option():
    assert len(FILES) == 4
    seen, blocks = set(), []
    for path in FILES:
        model = matconv_port.load_model(path)
        seen |= {l.type for l in model.layer_specs}
        blocks += [(l.type, l.block) for l in model.layer_specs]
    assert TYPES <= seen
    methods = {b.get("method") for t, b in blocks if t == "dagnn.GlobalPooling"}
    assert methods == {"avg", "max"}
    assert {b.get("axis") for t, b in blocks if t == "dagnn.Flatten"} == {1.0, 2.0, 3.0}
    shapes = [b.get("shape") for t, b in blocks if t == "dagnn.Reshape"]
    assert any(isinstance(s, list) and [] in s for s in shapes)  # cell with []
    assert any(isinstance(s, list) and -1.0 in s for s in shapes) and any(0.0 in s for s in shapes)  # Caffe style
    assert len({tuple(b.get("order")) for t, b in blocks if t == "dagnn.Permute"}) == 4
    slices = [b for t, b in blocks if t == "dagnn.Slice"]
    assert {b.get("dim") for b in slices} == {3.0, 4.0}
    points = [b["slicePoint"] if isinstance(b.get("slicePoint"), list) else [b.get("slicePoint")] for b in slices]
    assert any(len(p) == 3 and p[0] == p[1] for p in points)  # an empty slice


def test_slice_empty_slices_are_matlab_empty_ranges():
    case = load_case(os.path.join(FIXTURES, "mcn_extra", "mcnextra_slice.mat"))
    values = matconv_port.load_model(os.path.join(FIXTURES, "mcn_extra", "mcnextra_slice.mat")).forward_vars(
        dict(case.inputs), num_videos=case.num_videos)
    assert tuple(values["s4b"].shape) == (3, 0, 5, 4) and tuple(values["s4d"].shape) == (3, 0, 5, 4)
    assert tuple(values["s5c"].shape) == (0, 6, 5, 4)
    assert np.shape(case.expected["s4b"]) == (5, 4, 0, 3) and np.shape(case.expected["s5c"]) == (5, 4, 6, 0)


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(f) for f in FILES])
def test_every_var_matches_mcnextralayers(path):
    case = load_case(path)
    model = matconv_port.load_model(path)
    values = model.forward_vars(dict(case.inputs), num_videos=case.num_videos)
    failures = []
    for name, ref in case.expected.items():
        assert name in values, f"var {name} not computed"
        err = relative_error(values[name], ref)
        if not err <= RTOL_FP32:
            failures.append(f"{name}: {err:.3g}")
    assert len(case.expected) >= 7
    assert not failures, "; ".join(failures)


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(f) for f in FILES])
def test_output_shapes_arithmetic_agrees_with_forward(path):
    case = load_case(path)
    model = matconv_port.load_model(path)
    values = model.forward_vars(dict(case.inputs), num_videos=case.num_videos)
    ctx = ForwardContext(num_videos=case.num_videos or 1)
    checked = 0
    for module, spec in zip(model.layers, model.layer_specs):
        if spec.type not in TYPES:
            continue
        shapes = module.output_shapes([tuple(values[v].shape) for v in spec.inputs], [], ctx)
        assert shapes is not None, spec.name
        assert [tuple(values[o].shape) for o in spec.outputs] == [tuple(s) for s in shapes], spec.name
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(f) for f in FILES])
def test_converted_file_round_trip(path, tmp_path):
    case = load_case(path)
    out = str(tmp_path / "net.pt")
    from matconv_port.convert import convert_file

    first = next(iter(case.inputs.values()))  # N x C x H x W: the shape check's input size H, W, C
    size = [first.shape[2], first.shape[3], first.shape[1]]
    wanted = list(case.expected)
    if os.path.basename(path) == "mcnextra_slice.mat":
        # convert's shape check runs one item: slicing items 1:2 and 3:3 (dim 4 at [2 3]) cannot run
        # on it (nor in MatConvNet); the rest of the net converts
        with pytest.raises(ShapeError, match=r"layer 's5' \(dagnn.Slice\).*slice 1:2 along dim 4 is outside 1:1"):
            convert_file(path, out, log=lambda m: None, input_size=size)
        assert not os.path.exists(out)
        wanted = [v for v in wanted if not v.startswith("s5")]
        convert_file(path, out, log=lambda m: None, input_size=size,
                     outputs=[v for v in wanted if v not in case.inputs])
    else:
        convert_file(path, out, log=lambda m: None, input_size=size)
    a = matconv_port.load_model(path).forward_vars(dict(case.inputs), num_videos=case.num_videos)
    b = matconv_port.load_model(out).forward_vars(dict(case.inputs), num_videos=case.num_videos)
    for name in wanted:
        assert torch.equal(a[name], b[name]), name


def _net(ltype: str, block: dict, inputs=("x",)) -> NetSpec:
    layer = LayerSpec("lay", ltype, list(inputs), ["y"], [], block)
    return NetSpec(layers=[layer], vars=[VarSpec(v) for v in list(inputs) + ["y"]], source="t.mat")


@pytest.mark.parametrize("ltype,block,needle", [
    ("dagnn.Flatten", {"axis": 4.0}, "axis must be 1, 2 or 3"),
    ("dagnn.GlobalPooling", {"method": "sum"}, "'sum'"),
    ("dagnn.Permute", {"order": [1.0, 2.0, 3.0]}, "order must permute"),
    ("dagnn.Permute", {"order": [1.0, 2.0, 3.0, 5.0, 4.0]}, "order must permute"),
    ("dagnn.Reshape", {"shape": [[], [], 3.0]}, "at most one []"),
    ("dagnn.Reshape", {"shape": [-1.0, -1.0, 3.0]}, "more than one -1"),
    ("dagnn.Reshape", {"shape": ["a", 1.0, 2.0]}, "not an integer"),
])
def test_bad_options_are_refused_naming_the_layer(ltype, block, needle):
    with pytest.raises(ModelFormatError) as info:
        MatConvNetModel(_net(ltype, block))
    assert "'lay'" in str(info.value) and needle in str(info.value)


def _slice(block: dict, outputs: int) -> NetSpec:
    outs = [f"y{k}" for k in range(outputs)]
    layer = LayerSpec("lay", "dagnn.Slice", ["x"], outs, [], block)
    return NetSpec(layers=[layer], vars=[VarSpec(v) for v in ["x"] + outs], source="t.mat")


@pytest.mark.parametrize("block,outputs,needle", [
    ({"dim": 2.0, "slicePoint": 1.0}, 2, "dim must be 3 (channels) or 4"),
    ({"dim": 3.0, "slicePoint": []}, 1, "slicePoint is empty"),
    ({"dim": 3.0, "slicePoint": [1.5]}, 2, "must be integers"),
    ({"dim": 3.0, "slicePoint": [1.0, 2.0]}, 2, "2 slice points give 3 outputs, but the layer has 2"),
    ({}, 1, "1 slice points give 2 outputs"),  # default slicePoint 3
])
def test_slice_bad_options_are_refused_naming_the_layer(block, outputs, needle):
    with pytest.raises(ModelFormatError) as info:
        MatConvNetModel(_slice(block, outputs))
    assert "'lay'" in str(info.value) and needle in str(info.value)


def test_slice_past_the_input_is_a_shape_error():
    model = MatConvNetModel(_slice({"dim": 3.0, "slicePoint": [2.0, 7.0]}, 3))
    with pytest.raises(ShapeError, match=r"'lay'.*slice 3:7 along dim 3 is outside 1:6"):
        model.layers[0].output_shapes([(2, 6, 4, 4)], [], ForwardContext(num_videos=2))
    with pytest.raises(MatConvPortError, match="'lay'"):
        model.forward_vars({"x": torch.zeros(2, 6, 4, 4)})
    # a negative point only refused where its range is not empty (MATLAB 1:-1 is empty; 0:3 is not)
    neg = MatConvNetModel(_slice({"dim": 4.0, "slicePoint": [-1.0, 3.0]}, 3))
    with pytest.raises(ShapeError, match="slice 0:3 along dim 4"):
        neg.layers[0].output_shapes([(4, 2, 3, 3)], [], ForwardContext(num_videos=4))


def test_slice_matches_matlab_indexing():
    """Independent of the fixtures: X(:,:,a:b,:) for each range."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 7, 5)).astype(np.float32)  # MATLAB H x W x C x N
    t = torch.from_numpy(x.transpose(3, 2, 0, 1).copy())
    ys = MatConvNetModel(_slice({"dim": 3.0, "slicePoint": [1.0, 4.0]}, 3)).forward_vars({"x": t})
    for k, (a, b) in enumerate([(1, 1), (2, 4), (5, 7)]):
        assert torch.equal(ys[f"y{k}"], torch.from_numpy(x[:, :, a - 1:b, :].transpose(3, 2, 0, 1).copy()))
    ys = MatConvNetModel(_slice({"dim": 4.0, "slicePoint": [2.0]}, 2)).forward_vars({"x": t})
    assert torch.equal(ys["y1"], torch.from_numpy(x[:, :, :, 2:].transpose(3, 2, 0, 1).copy()))


def test_reshape_that_does_not_divide_is_a_shape_error():
    model = MatConvNetModel(_net("dagnn.Reshape", {"shape": [5.0, [], 1.0]}))
    with pytest.raises(ShapeError, match="'lay'.*cannot be reshaped to 5x\\[\\]x1"):
        model.layers[0].output_shapes([(2, 3, 4, 2)], [], ForwardContext(num_videos=2))
    with pytest.raises(MatConvPortError, match="'lay'"):
        model.forward_vars({"x": torch.zeros(2, 3, 4, 2)})


def test_axpy_shapes_that_do_not_broadcast_are_refused():
    model = MatConvNetModel(_net("dagnn.Axpy", {}, inputs=("a", "x1", "x2")))
    with pytest.raises(ShapeError, match="'lay'.*does not broadcast"):
        model.layers[0].output_shapes([(2, 3, 1, 1), (2, 4, 5, 5), (2, 4, 5, 5)], [], ForwardContext(num_videos=2))


def test_flatten_and_reshape_follow_matlab_column_major_order():
    """Independent of the fixtures: MATLAB's reshape is numpy's order='F' on H x W x C x N."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6, 3, 2)).astype(np.float32)  # MATLAB H x W x C x N
    t = torch.from_numpy(x.transpose(3, 2, 0, 1).copy())
    flat = MatConvNetModel(_net("dagnn.Flatten", {"axis": 3.0})).forward_vars({"x": t})["y"]
    assert torch.equal(flat[:, :, 0, 0], torch.from_numpy(x.reshape(72, 2, order="F").T.copy()))
    r = MatConvNetModel(_net("dagnn.Reshape", {"shape": [2.0, [], 3.0]})).forward_vars({"x": t})["y"]
    want = x.reshape((2, 12, 3, 2), order="F").transpose(3, 2, 0, 1)
    assert torch.equal(r, torch.from_numpy(want.copy()))
    p = MatConvNetModel(_net("dagnn.Permute", {"order": [3.0, 1.0, 2.0, 4.0]})).forward_vars({"x": t})["y"]
    assert torch.equal(p, torch.from_numpy(x.transpose(2, 0, 1, 3).transpose(3, 2, 0, 1).copy()))
