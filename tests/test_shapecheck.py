"""The shape check's arithmetic (each layer's ``output_shapes``) against running the
layers on ``meta`` tensors (what PyTorch itself says the shapes are), on every model
we have and on nets built to be wrong at each layer type."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import matconv_port
from matconv_port.errors import MatConvPortError, ShapeError
from matconv_port.netspec import LayerSpec, NetSpec, ParamSpec, VarSpec
from matconv_port.network import MatConvNetModel
from matconv_port.shapecheck import check_shapes, default_input_shapes, infer_var_shapes
from parity_utils import FIXTURES, REAL_MODELS, REAL_REFUSED, fixture_files


def _models():
    files = list(fixture_files())
    if os.path.isdir(REAL_MODELS):
        files += sorted(os.path.join(REAL_MODELS, f) for f in os.listdir(REAL_MODELS)
                        if f.endswith(".mat") and f not in REAL_REFUSED)
    assert len(files) > 30, files
    return files


def _both(model, inputs, num_videos=1):
    """(arithmetic result or error text, meta result or error text)."""
    out = []
    for use_meta in (False, True):
        try:
            out.append(infer_var_shapes(model, inputs, num_videos=num_videos, use_meta=use_meta))
        except ShapeError as exc:
            named = re.match(r"layer '([^']+)'", str(exc))
            out.append(("ShapeError", named.group(1) if named else str(exc)))
    return out


@pytest.mark.parametrize("path", _models(), ids=os.path.basename)
def test_arithmetic_equals_meta_on_every_model(path):
    try:
        model = matconv_port.load_model(path)
    except MatConvPortError as exc:  # only the refused real models may fail to load
        pytest.fail(f"{path}: {exc}")
    sizes = [None] + [[s, s] for s in (32, 64, 224)]
    for hw in sizes:
        inputs = default_input_shapes(model, hw)
        for videos in ((1, 2) if model.frames_per_clip else (1,)):
            inputs_v = {k: (s[0] * videos, *s[1:]) for k, s in inputs.items()}
            arith, meta = _both(model, inputs_v, videos)
            assert arith == meta, f"{os.path.basename(path)} at {hw}, {videos} videos"


# ----------------------------------------------------------------- nets built to be wrong
def _net(layers, params, inputs=("x",)) -> MatConvNetModel:
    spec = NetSpec(layers=[LayerSpec(*l) for l in layers],
                   params={k: ParamSpec(k, np.zeros(v, np.float32)) for k, v in params.items()})
    names = list(inputs) + [o for l in layers for o in l[3]]
    spec.vars = [VarSpec(n) for n in dict.fromkeys(names)]
    return MatConvNetModel(spec)


def _conv(name, x, y, f, b=None, **block):
    return (name, "dagnn.Conv", [x], [y], [f] + ([b] if b else []), block)


CASES = {
    "conv channels": (_net([_conv("c1", "x", "y", "w")], {"w": (3, 3, 5, 4)}), {"x": (1, 3, 8, 8)}),
    "conv too small": (_net([_conv("c1", "x", "y", "w", pad=[0, 0, 0, 0])], {"w": (9, 9, 3, 4)}), {"x": (1, 3, 8, 8)}),
    "conv dilated too small": (_net([_conv("c1", "x", "y", "w", dilate=[4, 4])], {"w": (3, 3, 3, 4)}), {"x": (1, 3, 8, 8)}),
    "conv biases": (_net([_conv("c1", "x", "y", "w", "b")], {"w": (3, 3, 3, 4), "b": (5, 1)}), {"x": (1, 3, 8, 8)}),
    "conv groups": (_net([_conv("c1", "x", "y", "w")], {"w": (3, 3, 2, 3)}), {"x": (1, 4, 8, 8)}),
    "conv ok groups asym pad stride": (_net([_conv("c1", "x", "y", "w", pad=[1, 0, 2, 1], stride=[2, 3])],
                                            {"w": (3, 2, 2, 4)}), {"x": (2, 4, 9, 11)}),
    "convt channels": (_net([("t1", "dagnn.ConvTranspose", ["x"], ["y"], ["w"], {"upsample": [2, 2]})],
                            {"w": (4, 4, 2, 5)}), {"x": (1, 3, 6, 6)}),
    "convt ok crop groups": (_net([("t1", "dagnn.ConvTranspose", ["x"], ["y"], ["w"],
                                    {"upsample": [2, 3], "crop": [1, 0, 2, 1], "numGroups": 3})],
                                  {"w": (4, 5, 2, 3)}), {"x": (1, 3, 6, 7)}),
    "convt crop too big": (_net([("t1", "dagnn.ConvTranspose", ["x"], ["y"], ["w"], {"crop": [3, 3, 0, 0]})],
                                {"w": (2, 2, 2, 3)}), {"x": (1, 3, 1, 4)}),
    "pool too small": (_net([("p1", "dagnn.Pooling", ["x"], ["y"], [], {"poolSize": [5, 5], "method": "avg"})], {}),
                       {"x": (1, 3, 4, 8)}),
    "pool ok asym": (_net([("p1", "dagnn.Pooling", ["x"], ["y"], [], {"poolSize": [3, 2], "pad": [0, 2, 1, 0],
                                                                   "stride": [2, 2]})], {}), {"x": (1, 3, 7, 8)}),
    "bnorm channels": (_net([("bn", "dagnn.BatchNorm", ["x"], ["y"], ["g", "b", "m"], {})],
                            {"g": (4, 1), "b": (4, 1), "m": (4, 2)}), {"x": (1, 3, 5, 5)}),
    "bnorm moments": (_net([("bn", "dagnn.BatchNorm", ["x"], ["y"], ["g", "b", "m"], {})],
                           {"g": (3, 1), "b": (3, 1), "m": (4, 2)}), {"x": (1, 3, 5, 5)}),
    "sum": (_net([("s", "dagnn.Sum", ["x", "z"], ["y"], [], {})], {}, ("x", "z")), {"x": (1, 3, 5, 5), "z": (1, 3, 5, 4)}),
    "concat channels": (_net([("cat", "dagnn.Concat", ["x", "z"], ["y"], [], {"dim": 3})], {}, ("x", "z")),
                        {"x": (1, 3, 5, 5), "z": (2, 3, 5, 4)}),
    "concat pads": (_net([("cat", "dagnn.Concat", ["x", "z"], ["y"], [], {"dim": 3})], {}, ("x", "z")),
                    {"x": (1, 3, 5, 5), "z": (1, 2, 6, 4)}),
    "scale broadcast": (_net([("sc", "dagnn.Scale", ["x"], ["y"], ["a", "b"], {})], {"a": (1, 1, 4), "b": (1, 1, 4)}),
                        {"x": (1, 3, 5, 5)}),
    "scale ok": (_net([("sc", "dagnn.Scale", ["x"], ["y"], ["a", "b"], {})], {"a": (5, 5, 3), "b": (1, 1, 3)}),
                 {"x": (2, 3, 5, 5)}),
    "relu lrn softmax": (_net([("r", "dagnn.ReLU", ["x"], ["a"], [], {}), ("n", "dagnn.LRN", ["a"], ["b"], [], {}),
                               ("s", "dagnn.SoftMax", ["b"], ["y"], [], {})], {}), {"x": (2, 7, 3, 4)}),
}

CASES_3D = {
    "conv3d frames": (_net([("c3", "dagnn.Conv3D", ["x"], ["y"], ["w"], {})], {"w": (1, 1, 3, 4, 4)}), {"x": (5, 4, 6, 6)}, 2),
    "conv3d channels": (_net([("c3", "dagnn.Conv3D", ["x"], ["y"], ["w"], {})], {"w": (1, 1, 3, 5, 4)}), {"x": (6, 4, 6, 6)}, 2),
    "conv3d too few frames": (_net([("c3", "dagnn.Conv3D", ["x"], ["y"], ["w"], {})], {"w": (1, 1, 4, 4, 4)}),
                              {"x": (6, 4, 6, 6)}, 2),
    "conv3d ok": (_net([("c3", "dagnn.Conv3D", ["x"], ["y"], ["w", "b"], {"pad": [1, 0, 0, 1, 1, 1], "stride": [1, 2, 2]})],
                       {"w": (3, 2, 3, 4, 6), "b": (6, 1)}), {"x": (10, 4, 6, 7)}, 2),
    "pool3d too few frames": (_net([("p3", "dagnn.Pooling3D", ["x"], ["y"], [], {"poolSize": [2, 2, 5]})], {}),
                              {"x": (6, 4, 6, 6)}, 2),
    "pool3d ok": (_net([("p3", "dagnn.Pooling3D", ["x"], ["y"], [], {"poolSize": [3, 3, 3], "stride": [2, 2, 2],
                                                                     "pad": [1, 1, 0, 1, 1, 1]})], {}),
                  {"x": (10, 4, 6, 7)}, 2),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_errors_and_shapes_match_meta(name):
    model, inputs = CASES[name]
    arith, meta = _both(model, inputs)
    assert arith == meta
    ok = " ok" in name or name == "relu lrn softmax" or name == "concat pads"
    assert isinstance(arith, dict) == ok, arith


@pytest.mark.parametrize("name", sorted(CASES_3D))
def test_3d_errors_and_shapes_match_meta(name):
    model, inputs, videos = CASES_3D[name]
    arith, meta = _both(model, inputs, videos)
    assert arith == meta
    assert isinstance(arith, dict) == name.endswith(" ok"), arith


def test_builtin_layers_need_no_meta_run():
    """Converting a net of built-in types never runs a layer on meta tensors (whose
    first call imports torch's compiler stack: about a second of a conversion)."""
    path = os.path.join(FIXTURES, "reference", sorted(os.listdir(os.path.join(FIXTURES, "reference")))[0])
    code = ("import sys, matconv_port; from matconv_port.shapecheck import check_shapes; "
            f"m = matconv_port.load_model({path!r}); check_shapes(m); "
            "print('torch._dynamo' in sys.modules, 'torch.fx.experimental.symbolic_shapes' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "False"]


def test_check_shapes_still_reports_the_layer():
    model = _net([_conv("c1", "x", "h", "w1"), ("r", "dagnn.ReLU", ["h"], ["a"], [], {}), _conv("c2", "a", "y", "w2")],
                 {"w1": (3, 3, 3, 4), "w2": (3, 3, 5, 2)})
    with pytest.raises(ShapeError, match="'c2'"):
        check_shapes(model, [8, 8])
