"""Parity with STOCK MatConvNet 1.0-beta25 for the types the paper's fork lacks.

``fixtures/stock/*.mat`` are written by ``fixtures/stock/export_stock_fixtures.m``, run
under GNU Octave on stock MatConvNet built by ``fixtures/stock/build.sh`` (CPU MEX files,
``-DENABLE_DOUBLE``). Every case exists in single (``<case>.mat``) and double
(``<case>_fp64.mat``) precision. Checked here, per var (every var of every case):
``max |ours - MatConvNet| <= RTOL * max |MatConvNet|`` with ``RTOL_FP32`` (1e-5) and
``RTOL_FP64`` (2e-15, as ``test_parity_fp64``); plus the shape arithmetic of each layer
against its outputs, the refusals of bad shapes/options (one line naming the layer),
``inspect`` and a ``convert`` round trip.
"""
from __future__ import annotations

import glob
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io as sio
import torch

import matconv_port
from matconv_port.inspect_model import describe
from matconv_port.errors import ShapeError
from matconv_port.layers.base import ForwardContext
from matconv_port.layers.registry import layer_class
from matconv_port.netspec import LayerSpec
from matconv_port.shapecheck import infer_var_shapes
from parity_utils import FIXTURES, RTOL_FP32, load, load_case, relative_error, reference_scale, run_case

#: fp64 parity bound (the same as test_parity_fp64's)
RTOL_FP64 = 2e-15

STOCK = os.path.join(FIXTURES, "stock")
FILES = sorted(glob.glob(os.path.join(STOCK, "*.mat")))
FP32 = [p for p in FILES if not p.endswith("_fp64.mat")]
FP64 = [p for p in FILES if p.endswith("_fp64.mat")]
STOCK_TYPES = {"dagnn.Crop", "dagnn.ROIPooling", "dagnn.BilinearSampler", "dagnn.AffineGridGenerator",
               "dagnn.UniformScalingGridGenerator", "dagnn.NormOffset", "dagnn.SpatialNorm", "dagnn.PDist"}


def _ids(paths):
    return [os.path.basename(p) for p in paths]


def _check_every_var(path: str, dtype: torch.dtype, rtol: float) -> None:
    case = load_case(path)
    model = load(path, dtype=dtype)
    out = run_case(case, model)
    assert len(case.expected) >= 5, f"{path}: only {sorted(case.expected)}"
    errors = {}
    for name in case.expected:
        assert name in out, f"{os.path.basename(path)}: var {name} was not computed"
        assert out[name].dtype == dtype or not out[name].is_floating_point(), f"{name}: {out[name].dtype}"
        errors[name] = relative_error(out[name], case.expected[name], reference_scale(case, model, name))
    bad = {k: v for k, v in errors.items() if not v <= rtol}
    assert not bad, f"{os.path.basename(path)}: vars over {rtol:g}: {bad}"


def test_fixtures_present_in_both_precisions():
    assert len(FP32) == 6 and len(FP64) == 6, _ids(FILES)
    assert {p.replace("_fp64.mat", ".mat") for p in FP64} == set(FP32)


def test_fixtures_cover_every_stock_type_and_option():
    types, blocks = set(), {}
    for path in FP32:
        model = load(path)
        for l in model.layer_specs:
            types.add(l.type)
            blocks.setdefault(l.type, []).append((l, model))
    assert STOCK_TYPES <= types, sorted(STOCK_TYPES - types)
    # ROIPooling: both methods, 1/2/6-value transforms, flatten, default subdivisions
    rois = [m.layers[m.layer_specs.index(l)] for l, m in blocks["dagnn.ROIPooling"]]
    assert {r.method for r in rois} == {"max", "avg"}
    assert {r.flatten for r in rois} == {True, False}
    assert (6, 6) in {r.subdivisions for r in rois}
    transforms = {r.transform for r in rois}
    assert {(1.0, 0, 0, 1.0, 0, 0), (0.5, 0, 0, 0.5, 0.5, 0.5), (0.5, 0, 0, 0.75, 0.5, 0.25)} <= transforms
    assert any(t[1] != 0 or t[2] != 0 for t in transforms), "no full 2x3 affine transform"
    # ROIs spread over all 3 images, some indices truncated/clamped, some outside the map
    d = sio.loadmat(os.path.join(STOCK, "dagnn_stock_roipool.mat"))
    img = d["rois"][0]
    assert set(np.clip(np.trunc(img), 1, 3)) == {1, 2, 3} and (img != np.trunc(img)).any() and (img < 1).any()
    # PDist: p 1, 2 and others; noRoot; aggregate both ways; instanceWeights input; broadcast x0
    pd = [(m.layers[m.layer_specs.index(l)], l) for l, m in blocks["dagnn.PDist"]]
    assert {1.0, 2.0} < {p.p for p, _ in pd} and any(p.p < 1 for p, _ in pd)
    assert {p.no_root for p, _ in pd} == {True, False} and {p.aggregate for p, _ in pd} == {True, False}
    assert any(len(l.inputs) == 3 for _, l in pd)
    # sampler: grid batch 2x the data batch, grids reaching outside [-1, 1] on every side
    grid = sio.loadmat(os.path.join(STOCK, "dagnn_stock_sampler.mat"))["outputs"]["grid_a"][0, 0]
    assert grid.shape[3] == 4 and grid.min() < -1.5 and grid.max() > 1.5
    # SimpleNN types noffset, spnorm, pdist
    sn = load(os.path.join(STOCK, "simplenn_stock_types.mat"))
    assert [l.type for l in sn.layer_specs][1:] == ["dagnn.NormOffset", "dagnn.SpatialNorm", "dagnn.ReLU", "dagnn.PDist"]


@pytest.mark.parametrize("path", FP32, ids=_ids(FP32))
def test_every_var_fp32(path):
    _check_every_var(path, torch.float32, RTOL_FP32)


@pytest.mark.parametrize("path", FP64, ids=_ids(FP64))
def test_every_var_fp64(path):
    d = sio.loadmat(path)
    assert d["outputs"]["input" if "input" in d["outputs"].dtype.names else "x0_input"][0, 0].dtype == np.float64
    _check_every_var(path, torch.float64, RTOL_FP64)


@pytest.mark.parametrize("path", FP32, ids=_ids(FP32))
def test_shape_arithmetic_matches_outputs(path):
    """Each layer's output_shapes gives the shapes its forward produced on the fixture."""
    case = load_case(path)
    model = load(path)
    out = run_case(case, model)
    given = {k: tuple(v.shape) for k, v in case.inputs.items() if k in model.input_vars or k in model.label_vars}
    shapes = infer_var_shapes(model, given, num_videos=case.num_videos or 1)
    for name, t in out.items():
        if name in shapes:
            assert shapes[name] == tuple(t.shape), f"{name}: arithmetic {shapes[name]} vs forward {tuple(t.shape)}"
    assert set(shapes) >= set(case.expected) - set(model.label_vars)


def _layer(mcn_type, block=None, inputs=("x", "y")):
    spec = LayerSpec(name="bad_one", type=mcn_type, inputs=list(inputs), outputs=["z"], block=dict(block or {}))
    return layer_class(mcn_type)(spec)


CTX = ForwardContext(num_videos=1)


@pytest.mark.parametrize("mcn_type, block, shapes, needle", [
    ("dagnn.Crop", {"crop": [0, 0]}, [(1, 3, 5, 5), (1, 3, 7, 5)], "smaller than the second"),
    ("dagnn.ROIPooling", {}, [(2, 3, 8, 8), (1, 1, 4, 3)], "not a positive multiple of 5"),
    ("dagnn.ROIPooling", {}, [(2, 3, 8, 8)], "takes 2 inputs"),
    ("dagnn.BilinearSampler", {}, [(2, 3, 8, 8), (3, 4, 2, 5)], "not a multiple"),
    ("dagnn.BilinearSampler", {}, [(2, 3, 8, 8), (2, 4, 3, 5)], "not 2"),
    ("dagnn.AffineGridGenerator", {"Ho": 3, "Wo": 4}, [(2, 4, 1, 1)], "6 values"),
    ("dagnn.UniformScalingGridGenerator", {"Ho": 3, "Wo": 4}, [(2, 6, 1, 1)], "1 x 1 x 3 x N"),
    ("dagnn.PDist", {"p": 2}, [(2, 3, 4, 4), (2, 5, 4, 4)], "does not broadcast"),
])
def test_bad_shapes_are_refused_naming_the_layer(mcn_type, block, shapes, needle):
    layer = _layer(mcn_type, block, inputs=[f"in{i}" for i in range(len(shapes))])
    with pytest.raises(ShapeError) as exc:
        layer.output_shapes(shapes, [], CTX)
    msg = str(exc.value)
    assert "'bad_one'" in msg and needle in msg and "\n" not in msg, msg
    if mcn_type != "dagnn.PDist":  # forward refuses the same way (PDist: torch's broadcast error)
        with pytest.raises(ShapeError):
            layer([torch.zeros(s) for s in shapes], [], CTX)


@pytest.mark.parametrize("mcn_type, block, needle", [
    ("dagnn.ROIPooling", {"method": "median"}, "unknown method"),
    ("dagnn.ROIPooling", {"subdivisions": [0, 2]}, "subdivisions"),
    ("dagnn.ROIPooling", {"transform": [1, 2, 3]}, "transform"),
    ("dagnn.AffineGridGenerator", {"Ho": 0, "Wo": 3}, "empty"),
    ("dagnn.SpatialNorm", {"param": [2, 2, 1]}, "param"),
    ("dagnn.NormOffset", {"param": [1, 2, 3]}, "param"),
    ("dagnn.Crop", {"crop": [1, 2, 3]}, "crop"),
])
def test_bad_options_are_refused_naming_the_layer(mcn_type, block, needle):
    with pytest.raises(ShapeError) as exc:
        _layer(mcn_type, block)
    assert "'bad_one'" in str(exc.value) and needle in str(exc.value)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from matconv_port.cli import main; main()", *args],
                          capture_output=True, text=True)


@pytest.mark.parametrize("path", FP32, ids=_ids(FP32))
def test_inspect_describes_every_layer_with_sizes(path):
    """What `inspect` prints (inspect_model.describe): every layer, its type and output size."""
    model = load(path)
    text = "\n".join(describe(model))
    assert "sizes unavailable" not in text, text
    for l in model.layer_specs:
        assert l.name in text and l.type.replace("dagnn.", "") in text


def test_inspect_cli_on_roipooling():
    proc = _cli("inspect", os.path.join(STOCK, "dagnn_stock_roipool.mat"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "rois 5x1x1x1" in out and "subdivisions=[3 2]" in out and "1x1x24x1" in out, out


def test_convert_round_trip(tmp_path):
    """convert writes the ROIPooling net; the converted file loads and matches MatConvNet per var."""
    path = os.path.join(STOCK, "dagnn_stock_roipool.mat")
    out = tmp_path / "roipool.pt"
    proc = _cli("convert", path, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "shape check passed" in proc.stdout
    case = load_case(path)
    converted = matconv_port.load_model(str(out))
    original = load(path)
    assert [l.type for l in converted.layer_specs] == [l.type for l in original.layer_specs]
    assert [l.block.get("transform") is not None for l in converted.layer_specs] == \
        [l.block.get("transform") is not None for l in original.layer_specs]
    a, b = run_case(case, converted), run_case(case, original)
    for name in case.expected:
        assert torch.equal(a[name], b[name]), name
        assert relative_error(a[name], case.expected[name], reference_scale(case, converted, name)) <= RTOL_FP32
