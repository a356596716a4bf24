"""Comparing our forward passes with outputs computed by the ORIGINAL MatConvNet.

Fixture files (``fixtures/reference/*.mat`` copied from the shared reference, and
``fixtures/generated/*.mat`` written by ``fixtures/export_fixtures.m``) follow one
convention: SimpleNN files hold ``net``, ``input`` and ``outputs.x<i>_<layer>``;
DagNN files hold ``net``, ``outputs.<var>``, the input vars, ``label`` and
``curBatchSize``. Tolerance: max |ours - MatConvNet| <= rtol * max |MatConvNet| per var.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
import scipy.io as sio
import torch

import matconv_port
from matconv_port import from_matconvnet_layout

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "fixtures")
SHARED = os.path.join(os.path.dirname(REPO), "shared")
REAL_MODELS = os.path.join(SHARED, "real_matconvnet_models")

#: real models whose inference path uses a type that is not MatConvNet's: file -> those types
REAL_REFUSED = {
    "lood339_player_detection__net_stage_1_dilation.mat": {"dpool"},
}

#: fp32 parity (the project's standard); see lrn_exact_tolerances for LRN in exact mode
RTOL_FP32 = 1e-5


def fixture_files() -> list[str]:
    files = []
    for sub in ("reference", "generated"):
        folder = os.path.join(FIXTURES, sub)
        if os.path.isdir(folder):
            files += sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".mat"))
    return files


@dataclass
class ParityCase:
    path: str
    kind: str  # "simplenn" | "dagnn"
    inputs: dict
    expected: dict  # var name -> ndarray in MatConvNet layout (H x W x C x N or scalar)
    num_videos: int | None
    var_order: list


def _str(x) -> str:
    x = np.asarray(x)
    return str(x.ravel()[0]) if x.size else ""


def load_case(path: str) -> ParityCase:
    d = sio.loadmat(path)
    outputs = d["outputs"]
    names = list(outputs.dtype.names)
    num_videos = int(np.asarray(d["curBatchSize"]).ravel()[0]) if "curBatchSize" in d else None
    if "var_order" in d:  # DagNN
        expected = {n: outputs[n][0, 0] for n in names}
        var_order = [_str(v) for v in np.asarray(d["var_order"]).ravel(order="F")]
        inputs = {}
        for n in names:
            if n in d and n not in ("net", "outputs"):
                inputs[n] = _input_value(n, np.asarray(d[n]))
        return ParityCase(path, "dagnn", inputs, expected, num_videos, var_order)
    expected = {}
    for n in names:
        m = re.match(r"x(\d+)_", n)
        if m:
            expected[f"x{int(m.group(1))}"] = outputs[n][0, 0]
    inputs = {"x0": from_matconvnet_layout(np.asarray(d["input"]))}
    # vl_simplenn reads a loss layer's labels from its `class` field; fromSimpleNN
    # names the corresponding label vars label, label2, ...
    net_layers = d["net"]["layers"][0, 0].ravel(order="F")
    k = 0
    for layer in net_layers:
        layer = layer[0, 0] if layer.dtype == object else layer
        if layer.dtype.names and "class" in layer.dtype.names and layer["class"][0, 0].size:
            k += 1
            cls = np.asarray(layer["class"][0, 0], dtype=np.float64)
            # fromSimpleNN's getNewVarName: label, label1, label2, ...
            inputs["label" if k == 1 else f"label{k - 1}"] = (
                torch.as_tensor(cls.ravel(order="F")) if cls.ndim <= 2 else from_matconvnet_layout(cls))
    return ParityCase(path, "simplenn", inputs, expected, num_videos, sorted(expected, key=lambda s: int(s[1:])))


def _input_value(name: str, arr: np.ndarray) -> torch.Tensor:
    """A stored input: label vectors (1 x N or N x 1) as 1-D tensors, images/maps
    H x W x C x N -> N x C x H x W."""
    if "label" in name and arr.ndim == 2 and 1 in arr.shape:
        return torch.as_tensor(np.asarray(arr, dtype=np.float64).ravel(order="F"))
    return from_matconvnet_layout(arr)


def mcn_array(t: torch.Tensor) -> np.ndarray:
    """Our N x C x H x W var -> MatConvNet's H x W x C x N (float64)."""
    t = t.detach().to(torch.float64).cpu()
    if t.dim() == 4:
        return t.permute(2, 3, 1, 0).numpy()
    return t.numpy()


def relative_error(ours: torch.Tensor, ref, scale: float | None = None) -> float:
    """max |ours - ref| / max |ref| with MATLAB's dropped trailing singleton dims ignored.
    ``scale`` replaces max |ref| when given (see :func:`reference_scale`)."""
    a = mcn_array(ours)
    b = np.asarray(ref, dtype=np.float64)
    a_flat, b_flat = a.reshape(-1, order="F"), b.reshape(-1, order="F")
    assert a_flat.size == b_flat.size, f"size {a.shape} vs MatConvNet {b.shape}"
    a_shape = [s for s in a.shape]
    b_shape = list(b.shape) + [1] * (len(a_shape) - b.ndim)
    assert a_shape[: len(b_shape)] == b_shape[: len(a_shape)], f"shape {a.shape} vs MatConvNet {b.shape}"
    if scale is None:
        scale = float(np.abs(b_flat).max()) if b_flat.size else 0.0
    scale = max(scale, 1e-30)
    return float(np.abs(a_flat - b_flat).max() / scale) if a_flat.size else 0.0


def lrn_exact_tolerances(model) -> dict[str, float]:
    """Vars at or after an LRN -> the tolerance of MatConvNet's CPU pow approximation
    against the exact formula. One LRN's error grows with beta (measured on the
    generated fixtures: 0.15% at beta 0.25, 0.33% at 0.75, 0.61% at 1.2), bounded by
    1.5e-3 + 3.2e-3 * beta; errors of cascaded LRNs add up along the path."""
    tol: dict[str, float] = {}
    for li in model.execution_order:
        l = model.layer_specs[li]
        upstream = max([tol[v] for v in l.inputs if v in tol], default=None)
        if l.type == "dagnn.LRN":
            beta = float(np.asarray(l.block.get("param", [5, 1, 1e-4, 0.75]), dtype=float).ravel()[3])
            upstream = (upstream or 0.0) + 1.5e-3 + 3.2e-3 * beta
        if upstream is not None:
            for o in l.outputs:
                tol[o] = upstream
    return tol


def reference_scale(case: "ParityCase", model, name: str) -> float:
    """max |MatConvNet value| of a var; for a var that is exactly 0 everywhere (e.g. a
    loss saturated in single precision) the largest input of the layer that wrote it,
    which is what bounds the rounding error of that output."""
    ref = np.asarray(case.expected[name], dtype=np.float64)
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    if scale > 0:
        return scale
    writer = next((l for l in model.layer_specs if name in l.outputs), None)
    inputs = [v for v in (writer.inputs if writer else []) if v in case.expected and v not in model.label_vars]
    return max([float(np.abs(np.asarray(case.expected[v], dtype=np.float64)).max()) for v in inputs], default=0.0)


def run_case(case: ParityCase, model) -> dict[str, torch.Tensor]:
    return model.forward_vars(dict(case.inputs), num_videos=case.num_videos)


def load(path: str, **kwargs):
    return matconv_port.load_model(path, **kwargs)


def var_failures(case: ParityCase, model, values: dict[str, torch.Tensor], lrn_mode: str) -> tuple[int, list[str]]:
    """Compare every expected var (labels aside) of ``case`` with ``values`` at the
    fp32 tolerance (in exact LRN mode: the CPU-pow bound after LRNs); returns (vars
    checked, one line per var over its tolerance). A missing var fails the test."""
    after_lrn = lrn_exact_tolerances(model) if lrn_mode == "exact" else {}
    failures, checked = [], 0
    for name, ref in case.expected.items():
        if name in model.label_vars:
            continue
        assert name in values, f"var {name} not computed; have {sorted(values)[:20]}"
        err = relative_error(values[name], ref, reference_scale(case, model, name))
        tol = after_lrn.get(name, RTOL_FP32)
        checked += 1
        if not err <= tol:
            failures.append(f"{name}: {err:.3g} > {tol:g}")
    return checked, failures
