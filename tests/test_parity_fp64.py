"""Double-precision parity with the ORIGINAL MatConvNet (fixtures/generated_fp64).

``fixtures/export_fixtures_fp64.m`` runs MatConvNet (MEX files built with
``-DENABLE_DOUBLE``) on double params and inputs, so the stored vars carry double
rounding only. Loaded with ``dtype=torch.float64``:

* ``lrn_mode="fast"``: EVERY var within ``RTOL_FP64`` x max|var| (LRN included: the
  double fast-pow emulation is bit-exact, see ``test_lrn_layers_bitwise``);
* ``lrn_mode="exact"``: vars not downstream of an LRN within ``RTOL_FP64``; LRN
  outputs within the CPU pow approximation's error (``lrn_exact_tolerances``), and
  equal to the exact formula stored in the file to ``RTOL_FP64`` when fed the
  layer's stored input.

Measured (torch 2.13 CPU, 1 or 2 threads, mkldnn on or off): worst var 6.0e-16 x max|var|
(a pooled BatchNorm output of ``dagnn_blocks_losses_fp64``); ``RTOL_FP64`` is set a
little above, at 2e-15 (about 9 ulp), i.e. 5000x tighter than the fp32 bound.

There are no 3D (Conv3D / Pooling3D) fp64 fixtures: MexConv3D is single-only.
"""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import scipy.io as sio
import torch

from matconv_port import from_matconvnet_layout
from matconv_port.layers.base import ForwardContext
from parity_utils import (FIXTURES, RTOL_FP32, load, load_case, lrn_exact_tolerances, relative_error,
                          run_case)

#: fp64 parity: max |ours - MatConvNet| <= RTOL_FP64 * max |MatConvNet| per var
RTOL_FP64 = 2e-15

FP64_DIR = os.path.join(FIXTURES, "generated_fp64")
FILES = sorted(glob.glob(os.path.join(FP64_DIR, "*.mat")))
IDS = [os.path.basename(p) for p in FILES]
#: every layer family the fp64 fixtures must exercise (MatConvNet/DagNN type names)
REQUIRED_TYPES = {"dagnn.Conv", "dagnn.ConvTranspose", "dagnn.ReLU", "dagnn.Sigmoid", "dagnn.Pooling",
                  "dagnn.LRN", "dagnn.BatchNorm", "dagnn.DropOut", "dagnn.SoftMax", "dagnn.Loss",
                  "dagnn.Concat", "dagnn.Sum", "dagnn.Scale"}


def _params_of(path: str) -> dict[str, np.ndarray]:
    from matconv_port.converters import load_netspec

    return {name: p.value for name, p in load_netspec(path).params.items()}


def test_fp64_fixtures_present_and_cover_the_layer_types():
    names = set(IDS)
    assert {"simplenn_chain_fp64.mat", "simplenn_normalize_fp64.mat", "simplenn_convt_sigmoid_fp64.mat",
            "simplenn_softmaxloss_fp64.mat", "dagnn_blocks_losses_fp64.mat",
            "dagnn_losses_spatial_frames_fp64.mat", "dagnn_losses_single_frame_fp64.mat"} <= names
    types: set[str] = set()
    lrn_depths: set[int] = set()
    for path in FILES:
        model = load(path, dtype=torch.float64)
        for l in model.layer_specs:
            types.add(l.type)
            if l.type == "dagnn.LRN":
                lrn_depths.add(int(np.asarray(l.block["param"], dtype=float).ravel()[0]))
    missing = REQUIRED_TYPES - types
    assert not missing, f"fp64 fixtures do not cover {sorted(missing)} (have {sorted(types)})"
    assert {d % 2 for d in lrn_depths} == {0, 1}, f"need odd and even LRN depths, have {sorted(lrn_depths)}"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_fixture_is_double(path):
    """Inputs, params and (all but one) stored vars are double in the .mat itself."""
    d = sio.loadmat(path)
    case = load_case(path)
    for name, value in case.inputs.items():
        if value.is_floating_point():
            assert value.dtype == torch.float64, f"input {name} is {value.dtype}"
    for name, value in _params_of(path).items():
        assert value.dtype == np.float64, f"param {name} is {value.dtype}"
    for name, ref in case.expected.items():
        ref = np.asarray(ref)
        # vl_nnloss's top5classerror casts its errors to single even for double input
        if ref.dtype.kind == "f" and not name.endswith("top5classerror"):
            assert ref.dtype == np.float64, f"stored var {name} is {ref.dtype}"
    assert "description" in d


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_every_var_matches_matconvnet_fp64_fast(path):
    case = load_case(path)
    model = load(path, dtype=torch.float64, lrn_mode="fast")
    values = run_case(case, model)
    failures, checked = [], 0
    for name, ref in case.expected.items():
        if name in model.label_vars:
            continue
        assert name in values, f"var {name} not computed"
        assert values[name].dtype == torch.float64, f"var {name} computed in {values[name].dtype}"
        err = relative_error(values[name], ref)
        checked += 1
        if not err <= RTOL_FP64:
            failures.append(f"{name}: {err:.3g} > {RTOL_FP64:g}")
    assert checked >= 3
    assert not failures, "; ".join(failures)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_every_var_matches_matconvnet_fp64_exact(path):
    """True pow: vars not downstream of an LRN stay at fp64 parity; LRN-downstream vars
    differ by MatConvNet's CPU pow approximation (it is what the reference holds)."""
    case = load_case(path)
    model = load(path, dtype=torch.float64, lrn_mode="exact")
    values = run_case(case, model)
    after_lrn = lrn_exact_tolerances(model)
    failures, tight = [], 0
    for name, ref in case.expected.items():
        if name in model.label_vars:
            continue
        err = relative_error(values[name], ref)
        tol = after_lrn.get(name, RTOL_FP64)
        tight += name not in after_lrn
        if not err <= tol:
            failures.append(f"{name}: {err:.3g} > {tol:g}")
    assert tight >= 1
    assert not failures, "; ".join(failures)


def _lrn_layers(model):
    return [(li, l) for li, l in enumerate(model.layer_specs) if l.type == "dagnn.LRN"]


def _exact_formula(path: str) -> dict[str, np.ndarray]:
    """``lrn_exact_formula.x<i>_<name>`` of a SimpleNN file, keyed ``x<i>``."""
    d = sio.loadmat(path)
    if "lrn_exact_formula" not in d:
        return {}
    s = d["lrn_exact_formula"]
    return {n.split("_", 1)[0]: s[n][0, 0] for n in s.dtype.names}


LRN_FILES = [p for p in FILES if os.path.basename(p) in ("simplenn_normalize_fp64.mat", "dagnn_blocks_losses_fp64.mat")]


@pytest.mark.parametrize("path", LRN_FILES, ids=[os.path.basename(p) for p in LRN_FILES])
def test_lrn_layers_bitwise(path):
    """Each LRN fed MatConvNet's stored (double) input: ``fast`` gives MatConvNet's
    double CPU output BIT FOR BIT; ``exact`` gives the file's exact-pow formula (double)."""
    case = load_case(path)
    exact = _exact_formula(path)
    fast_model = load(path, dtype=torch.float64, lrn_mode="fast")
    exact_model = load(path, dtype=torch.float64, lrn_mode="exact")
    layers = _lrn_layers(fast_model)
    assert layers
    for li, l in layers:
        x = from_matconvnet_layout(np.asarray(case.expected[l.inputs[0]], dtype=np.float64))
        ref = from_matconvnet_layout(np.asarray(case.expected[l.outputs[0]]))
        (y,) = fast_model.layers[li]([x], [], ForwardContext(num_videos=1, lrn_mode="fast"))
        assert y.dtype == torch.float64
        assert torch.equal(y, ref), f"{l.name}: max diff {(y - ref).abs().max().item():.3g}"
        (ye,) = exact_model.layers[li]([x], [], ForwardContext(num_videos=1, lrn_mode="exact"))
        if l.outputs[0] in exact:
            err = relative_error(ye, exact[l.outputs[0]])
            assert err <= RTOL_FP64, f"{l.name}: exact mode vs exact formula {err:.3g}"
        # the CPU approximation really differs from exact pow (else fast mode proves nothing)
        assert not torch.equal(ye, ref), l.name
    if os.path.basename(path).startswith("simplenn"):
        assert exact, "SimpleNN LRN fixture without lrn_exact_formula"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_params_stay_double_and_bit_exact(path, tmp_path):
    """Double params of the .mat stay double (bit for bit) in fp64 mode: in the model,
    back through to_netspec, and through a --float64 converted .pt."""
    from matconv_port.convert import convert_file

    original = _params_of(path)
    model = load(path, dtype=torch.float64, lrn_mode="fast")
    for name, p in model.named_matconvnet_params():
        assert p.dtype == torch.float64, f"param {name} is {p.dtype} in the fp64 model"
    back = {n: p.value for n, p in model.to_netspec().params.items()}
    assert set(back) == set(original)
    for name, value in original.items():
        got = np.asarray(back[name])
        assert got.dtype == np.float64, f"param {name} comes back as {got.dtype}"
        assert got.shape == value.shape and np.array_equal(got, value), f"param {name} changed"

    out = convert_file(path, str(tmp_path / "net.pt"), dtype=torch.float64, log=lambda m: None)
    converted = load(out, dtype=torch.float64, lrn_mode="fast")
    for name, value in original.items():
        got = np.asarray(converted.to_netspec().params[name].value)
        assert got.dtype == np.float64 and np.array_equal(got, value), f"param {name} changed in {out}"
    case = load_case(path)
    direct, again = run_case(case, model), run_case(case, converted)
    assert set(direct) == set(again)
    for name in direct:
        assert torch.equal(direct[name], again[name]), name


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_float32_mode_on_double_fixture(path):
    """The default fp32 load of a double net computes in float32 at fp32 parity."""
    case = load_case(path)
    model = load(path, lrn_mode="fast")
    for name, p in model.named_matconvnet_params():
        assert p.dtype == torch.float32, name
    values = run_case(case, model)
    for name, ref in case.expected.items():
        if name in model.label_vars or name in case.inputs:
            continue
        assert values[name].dtype == torch.float32, name
        assert relative_error(values[name], ref) <= RTOL_FP32, name
