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
from matconv_port import from_matconvnet_layout
from parity_utils import (FIXTURES, RTOL_FP32, load, load_case, mcn_array, relative_error, reference_scale,
                          run_case)

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
    assert [l.type for l in sn.layer_specs][1:] == ["dagnn.NormOffset", "dagnn.SpatialNorm", "dagnn.ReLU", "dagnn.PDist",
                                                    "dagnn.PDist"]
    plain, with_opts = sn.layers[4], sn.layers[5]
    assert (plain.p, plain.no_root, plain.aggregate, plain.instance_weights) == (2.0, False, False, None)
    assert (with_opts.p, with_opts.no_root, with_opts.aggregate) == (3.0, True, True)
    assert with_opts.instance_weights.shape == (7, 6, 1, 2) and with_opts.epsilon == 1e-2
    assert sn.label_vars == ["label", "label1"]


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


@pytest.mark.parametrize("method", ["max", "avg"])
def test_roi_pool_chunks_match_a_direct_loop(method):
    """Many ROIs (several chunks, several images, partly outside): the vectorised pooling
    equals a direct transcription of nnroipooling.cu's loops (same bin edges)."""
    from matconv_port.layers.roipooling import roi_bins, roi_pool, roi_rows

    rng = np.random.default_rng(7)
    x = torch.from_numpy(rng.standard_normal((3, 4, 13, 17))).to(torch.float64)
    n = 45
    corners = rng.uniform(-6, 22, (4, n))
    rois = np.vstack([rng.integers(1, 4, n), corners]).astype(np.float64)
    rois_t = torch.from_numpy(rois)[None, None]  # MATLAB 5 x n
    transform = (0.7, 0.05, -0.1, 0.6, 0.4, 0.2)
    got = roi_pool(x, rois_t, (3, 4), transform, method)
    image, hl, hh, wl, wh = roi_bins(roi_rows(rois_t), np.dtype(np.float64), transform, (3, 4), 13, 17, 3)
    want = torch.zeros_like(got)
    for r in range(n):
        for p in range(3):
            for q in range(4):
                part = x[image[r], :, hl[r, p]:hh[r, p], wl[r, q]:wh[r, q]]
                if part.numel():
                    want[r, :, p, q] = part.amax(dim=(1, 2)) if method == "max" else \
                        part.sum(dim=(1, 2)) * (1.0 / (part.shape[1] * part.shape[2]))
    assert (want == 0).any() and (want != 0).any()
    torch.testing.assert_close(got, want, rtol=1e-14, atol=1e-14)


def test_rois_as_r_by_5_rows_or_matconvnet_layout():
    """ROIs may be given as the MatConvNet 5 x R array (4-D layout tensor) or as R x 5 rows."""
    from matconv_port import from_matconvnet_layout

    case = load_case(os.path.join(STOCK, "dagnn_stock_roipool.mat"))
    model = load(os.path.join(STOCK, "dagnn_stock_roipool.mat"))
    mcn = sio.loadmat(os.path.join(STOCK, "dagnn_stock_roipool.mat"))["rois"]  # 5 x R
    a = model.forward_vars({"input": case.inputs["input"], "rois": from_matconvnet_layout(mcn)})
    b = model.forward_vars({"input": case.inputs["input"], "rois": torch.from_numpy(np.ascontiguousarray(mcn.T))})
    for name in ("p_max", "p_avg_affine", "p_flat"):
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("path", FP32, ids=_ids(FP32))
def test_export_to_matconvnet_round_trip(path, tmp_path):
    """export_matconvnet writes the stock types back as a DagNN .mat; it reloads to the same vars."""
    from matconv_port.export import export_matconvnet

    case = load_case(path)
    model = load(path)
    out = tmp_path / "net.mat"
    export_matconvnet(model, str(out))
    back = matconv_port.load_model(str(out))
    assert [(l.name, l.type, l.inputs, l.outputs) for l in back.layer_specs] == \
        [(l.name, l.type, l.inputs, l.outputs) for l in model.layer_specs]
    a, b = run_case(case, model), run_case(case, back)
    for name in case.expected:
        assert torch.equal(a[name], b[name]), name
    # the blocks carry the fields stock's Layer.save writes, in its order (checked in stock MatConvNet
    # itself by fixtures/stock/check_stock_export.m)
    if os.path.basename(path).startswith("dagnn_"):
        want = {str(l["name"][0]): list(l["block"].dtype.names or [])
                for l in sio.loadmat(path)["net"]["layers"][0, 0][0] if str(l["type"][0]) in STOCK_TYPES}
        got = {str(l["name"][0]): list(l["block"].dtype.names or [])
               for l in sio.loadmat(str(out))["net"]["layers"][0, 0][0] if str(l["type"][0]) in STOCK_TYPES}
        assert got
        assert got == want


GRAD = os.path.join(STOCK, "grad")
GRAD_FILES = sorted(glob.glob(os.path.join(GRAD, "*_grad.mat")))


def test_backward_references_present():
    assert len(GRAD_FILES) == 10, _ids(GRAD_FILES)


@pytest.mark.parametrize("gpath", GRAD_FILES, ids=_ids(GRAD_FILES))
def test_backward_matches_stock(gpath):
    """Input derivatives of a backward pass (seeded random derOutputs) match stock's
    net.eval(inputs, derOutputs). Where MatConvNet returns none (ROIs, instanceWeights) there is
    nothing to compare; stock's vl_nnpdist returns the derivative of a BROADCAST x0 unreduced
    (the size of x, not of x0), which is compared summed over the broadcast dims. Stock's grid
    generators build their input derivatives in single even for double data: compared at fp32."""
    fp64 = gpath.endswith("_fp64_grad.mat")
    dtype, rtol = (torch.float64, RTOL_FP64) if fp64 else (torch.float32, RTOL_FP32)
    path = os.path.join(STOCK, os.path.basename(gpath).replace("_grad.mat", ".mat"))
    g = sio.loadmat(gpath)
    case = load_case(path)
    model = load(path, dtype=dtype)
    inputs = {k: (v.clone().requires_grad_(True) if v.is_floating_point() and k != "rois" else v)
              for k, v in case.inputs.items()}
    out = model.forward_vars(inputs)
    total = 0
    for key in g:
        if key.startswith("dzdy_"):
            t = out[key[5:]]
            d = torch.from_numpy(np.asarray(g[key]))
            d = from_matconvnet_layout(d) if t.dim() == 4 else d
            total = total + (t * d.reshape(t.shape).to(t.dtype)).sum()
    total.backward()
    checked = 0
    single_ders = {l.inputs[0] for l in model.layer_specs
                   if l.type in ("dagnn.AffineGridGenerator", "dagnn.UniformScalingGridGenerator")}
    for key in g:
        if not key.startswith("der_"):
            continue
        name, ref = key[4:], np.asarray(g[key], dtype=np.float64)
        if ref.size == 0:
            continue
        ours = inputs[name].grad
        assert ours is not None, name
        if ours.numel() != ref.size:  # stock's unreduced derivative of a broadcast input
            ref_t = from_matconvnet_layout(ref)
            dims = [i for i in range(4) if ours.shape[i] == 1 and ref_t.shape[i] > 1]
            ref = mcn_array(ref_t.sum(dim=dims, keepdim=True))
        tol = RTOL_FP32 if name in single_ders else rtol
        err = relative_error(ours, ref)
        assert err <= tol, f"{name}: {err:.2e} > {tol:g}"
        checked += 1
    assert checked >= 1
    from matconv_port.layers.registry import param_to_matconvnet

    for key in g:  # params' derivatives (the conv/convt params of the crop and roipool cases)
        if key.startswith("pder_"):
            name = key[5:]
            grad = model.params[model.param_keys[name]].grad
            ours = param_to_matconvnet(model.param_layouts[name], grad, model.param_shapes[name])
            ref = np.asarray(g[key], dtype=np.float64)
            err = float(np.abs(ours.reshape(-1, order="F") - ref.reshape(-1, order="F")).max() / np.abs(ref).max())
            assert err <= rtol, f"param {name}: {err:.2e}"
