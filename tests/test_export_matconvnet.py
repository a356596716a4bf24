"""MatConvNet export: the saved DagNN struct has MatConvNet's own layout, and a round
trip through our converter gives bit-identical params and outputs.

Ground truth for the layout: the ``net`` structs in ``fixtures/reference`` (written by
the ORIGINAL ``dagnn.DagNN.saveobj`` under Octave). Loading the exported files in
MatConvNet itself is checked outside these tests with
``fixtures/check_export_in_matconvnet.m``.
"""
from __future__ import annotations

import functools
import glob
import os

import numpy as np
import pytest
import torch

from matconv_port import from_matconvnet_layout, load_model
from parity_utils import REAL_REFUSED
from matconv_port.converters import load_netspec
from matconv_port.converters.matfile import MatCell, MatStructArray, mat_equal, read_mat
from matconv_port.errors import MatConvPortError
from matconv_port.export import export_matconvnet, netspec_to_dagnn_struct
from matconv_port.network import MatConvNetModel

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(os.path.dirname(HERE), "fixtures", "reference")
REF_FILES = sorted(glob.glob(os.path.join(REF, "*.mat")))
FUSED = os.path.join(REF, "fusion_twostream_vgg16narrow_a.mat")
REAL_MODELS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "real_matconvnet_models")

#: DagNN structs saved by MatConvNet itself: (file, variable)
DAGNN_STRUCTS = [(os.path.join(REF, "dagnn_misc_a.mat"), "net"), (FUSED, "net"),
                 (FUSED, "netA_spatial_stream"), (FUSED, "netB_temporal_stream")]


def _ids(paths):
    return [os.path.splitext(os.path.basename(p))[0] for p in paths]


def _inputs(model, data: dict) -> tuple[dict, int | None]:
    inputs = {v: from_matconvnet_layout(data[v] if v in data else data["input"]) for v in model.input_vars}
    nv = int(np.asarray(data["curBatchSize"]).ravel()[0]) if "curBatchSize" in data else None
    if "label" in data and model.label_vars:
        for v in model.label_vars:
            inputs[v] = torch.as_tensor(np.asarray(data["label"], dtype=np.float64).ravel())
    return inputs, nv


def _assert_same_params(a: MatConvNetModel, b: MatConvNetModel) -> None:
    sa, sb = a.to_netspec(), b.to_netspec()
    assert set(sa.params) == set(sb.params)
    for name, p in sa.params.items():
        q = sb.params[name]
        assert p.value.dtype == q.value.dtype and p.value.shape == q.value.shape, name
        assert np.array_equal(p.value, q.value), name
        assert (p.learning_rate, p.weight_decay) == (q.learning_rate, q.weight_decay), name


# ----------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("path", REF_FILES, ids=_ids(REF_FILES))
def test_round_trip_bit_identical(path, tmp_path):
    model = load_model(path)
    out = tmp_path / "net.mat"
    export_matconvnet(model, str(out))
    back = load_model(str(out))
    _assert_same_params(model, back)
    assert [(l.name, l.type, l.inputs, l.outputs, l.params) for l in model.layer_specs] == \
           [(l.name, l.type, l.inputs, l.outputs, l.params) for l in back.layer_specs]
    assert back.execution_order == model.execution_order
    data = read_mat(path)
    inputs, nv = _inputs(model, data)
    with torch.no_grad():
        ya = model.forward_vars(dict(inputs), num_videos=nv)
        yb = back.forward_vars(dict(inputs), num_videos=nv)
    assert ya.keys() == yb.keys()
    for k in ya:
        assert torch.equal(ya[k], yb[k]), k
    # the converter reads it as a DagNN now (a SimpleNN source becomes fromSimpleNN's DagNN)
    assert isinstance(read_mat(str(out))["net"]["layers"], MatStructArray)


def test_round_trip_v73(tmp_path):
    model = load_model(FUSED)
    out = tmp_path / "net73.mat"
    export_matconvnet(model, str(out), version="7.3")
    with open(out, "rb") as fh:
        assert fh.read(10) == b"MATLAB 7.3"
    _assert_same_params(model, load_model(str(out)))


def test_exported_file_permissions_follow_umask(tmp_path):
    model = load_model(os.path.join(REF, "simplenn_small_v7.mat"))
    out = tmp_path / "net.mat"
    export_matconvnet(model, str(out))
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask


def test_exported_file_reads_back_as_the_struct(tmp_path):
    model = load_model(os.path.join(REF, "dagnn_misc_a.mat"))
    out = tmp_path / "net.mat"
    export_matconvnet(model, str(out))
    assert mat_equal(read_mat(str(out))["net"], netspec_to_dagnn_struct(model.to_netspec()))


# ----------------------------------------------------------------------------- layout
def _by_name(structs):
    return sorted(structs, key=lambda s: s["name"])


@pytest.mark.parametrize("path,var", DAGNN_STRUCTS, ids=[f"{_ids([p])[0]}-{v}" for p, v in DAGNN_STRUCTS])
def test_struct_equals_matconvnet_saveobj(path, var):
    """Same fields, same MATLAB classes and shapes, same values as MatConvNet's own save."""
    ref = _read(path)[var]
    spec = load_netspec(path) if var == "net" else _spec_of_variable(path, var)
    ours = netspec_to_dagnn_struct(MatConvNetModel(spec).to_netspec())
    assert list(ours) == ["vars", "params", "layers", "meta"] == list(ref)
    for key in ("vars", "layers"):
        assert ours[key].fields == ref[key].fields and ours[key].shape == ref[key].shape, key
        assert mat_equal(ours[key], ref[key]), key
    assert ours["params"].fields == ref["params"].fields and ours["params"].shape == ref["params"].shape
    # params: MatConvNet's loadobj re-creates params in first-use order, so the order may differ
    for a, b in zip(_by_name(ours["params"]), _by_name(ref["params"])):
        assert list(a) == list(b) and all(mat_equal(a[f], b[f]) for f in a), a["name"]
    assert mat_equal(ours["meta"], ref["meta"])


def _spec_of_variable(path: str, var: str):
    from matconv_port.converters.loader import netspec_from_variables

    return netspec_from_variables({"net": _read(path)[var]}, path)


def _signature(value):
    """MATLAB class and shape kind of a neutral value (what `load` in MATLAB sees)."""
    if isinstance(value, MatCell):
        return ("cell", "empty" if len(value) == 0 else "row" if value.shape[0] == 1 else value.shape)
    if isinstance(value, np.ndarray):
        return (value.dtype.name, "empty" if value.size == 0 else "row" if value.shape[0] == 1 else "array")
    if isinstance(value, dict):
        return ("struct", tuple(value))
    return (type(value).__name__,)


@functools.lru_cache(maxsize=None)
def _read(path: str) -> dict:
    return read_mat(path)


def _reference_block_signatures() -> dict[str, dict]:
    sigs: dict[str, dict] = {}
    for path, var in DAGNN_STRUCTS:
        for layer in _read(path)[var]["layers"]:
            sig = {k: _signature(v) for k, v in layer["block"].items()}
            sigs.setdefault(layer["type"], sig)
    return sigs


SIMPLENN_FILES = [p for p in REF_FILES if os.path.basename(p).startswith("simplenn")]


@pytest.mark.parametrize("path", SIMPLENN_FILES, ids=_ids(SIMPLENN_FILES))
def test_simplenn_exported_as_fromsimplenn_dagnn(path):
    ref_sigs = _reference_block_signatures()
    spec = load_netspec(path)
    s = netspec_to_dagnn_struct(MatConvNetModel(spec).to_netspec())
    assert s["vars"].fields == ["name", "precious"]
    assert s["params"].fields == ["name", "value", "learningRate", "weightDecay"]
    assert s["layers"].fields == ["name", "type", "inputs", "outputs", "params", "block"]
    n = len(s["layers"])
    assert [v["name"] for v in s["vars"]][0] == "x0"
    assert [v["name"] for v in s["vars"]][-1].startswith("x") or s["layers"][n - 1]["type"] == "dagnn.Loss"
    for layer in s["layers"]:
        assert layer["type"].startswith("dagnn.")
        for key in ("inputs", "outputs"):
            assert isinstance(layer[key], MatCell) and layer[key].shape == (1, len(layer[key]))
        if layer["type"] in ref_sigs:
            sig = {k: _signature(v) for k, v in layer["block"].items()}
            ref = ref_sigs[layer["type"]]
            assert list(sig) == list(ref), layer["name"]
            for k in sig:
                # opts: fromSimpleNN copies the tidy SimpleNN opts ({}), the class default is {'cuDNN'}
                if k != "opts":
                    assert sig[k][0] == ref[k][0], (layer["name"], k)
    for p in s["params"]:
        assert p["value"].dtype == np.float32
        assert p["learningRate"].shape == (1, 1) and p["learningRate"].dtype == np.float64


def test_block_defaults_and_types_from_plain_values():
    from matconv_port.export.matconvnet_export import block_struct
    from matconv_port.netspec import LayerSpec

    conv = LayerSpec("c", "dagnn.Conv", ["x"], ["y"], ["cf", "cb"], {"pad": 1.0, "stride": [2.0, 2.0]})
    b = block_struct(conv, {"cf": (3, 3, 4, 8), "cb": (1, 8)})
    assert list(b) == ["size", "hasBias", "opts", "pad", "stride"]
    assert b["size"].tolist() == [[3, 3, 4, 8]] and b["hasBias"].dtype == np.bool_ and b["hasBias"][0, 0]
    assert b["pad"].shape == (1, 1) and b["stride"].tolist() == [[2.0, 2.0]]
    assert isinstance(b["opts"], MatCell) and list(b["opts"]) == ["cuDNN"]
    bn = block_struct(LayerSpec("bn", "dagnn.BatchNorm", ["x"], ["y"], ["m", "b", "x"], {"hasMoments": True}), {})
    assert list(bn) == ["numChannels", "epsilon"] and bn["numChannels"].shape == (0, 0)
    loss = block_struct(LayerSpec("l", "dagnn.Loss", ["x", "label"], ["o"], [], {"loss": "topkerror",
                                                                                  "opts": ["topK", 2.0]}), {})
    assert loss["loss"] == "topkerror" and loss["opts"].shape == (1, 2)
    assert loss["opts"][0] == "topK" and loss["opts"][1].tolist() == [[2.0]]
    custom = block_struct(LayerSpec("z", "my.Layer", ["x"], ["y"], [], {"alpha": 0.5, "name": "q", "on": True}), {})
    assert custom["alpha"].tolist() == [[0.5]] and custom["name"] == "q" and custom["on"].dtype == np.bool_


# ----------------------------------------------------------------------------- bad input
def test_missing_folder_writes_nothing(tmp_path):
    model = load_model(os.path.join(REF, "simplenn_small_v7.mat"))
    with pytest.raises(MatConvPortError, match="does not exist"):
        export_matconvnet(model, str(tmp_path / "nope" / "net.mat"))
    assert not (tmp_path / "nope").exists()


def test_bad_version_writes_nothing(tmp_path):
    model = load_model(os.path.join(REF, "simplenn_small_v7.mat"))
    with pytest.raises(MatConvPortError):
        export_matconvnet(model, str(tmp_path / "net.mat"), version="6")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- real models
def _real_models():
    if not os.path.isdir(REAL_MODELS):
        return []
    # the refused ones are covered by tests/test_real_models.py
    return sorted(p for p in glob.glob(os.path.join(REAL_MODELS, "*.mat"))
                  if os.path.getsize(p) < 4_000_000 and os.path.basename(p) not in REAL_REFUSED)


@pytest.mark.skipif(not os.path.isdir(REAL_MODELS), reason=f"{REAL_MODELS} does not exist")
@pytest.mark.parametrize("path", _real_models(), ids=_ids(_real_models()))
def test_real_model_round_trip(path, tmp_path):
    model = load_model(path, warn=lambda m: None)
    out = tmp_path / "net.mat"
    export_matconvnet(model, str(out))
    back = load_model(str(out), warn=lambda m: None)
    _assert_same_params(model, back)
    assert [(l.name, l.type, l.inputs, l.outputs) for l in model.layer_specs] == \
           [(l.name, l.type, l.inputs, l.outputs) for l in back.layer_specs]


def test_fusion_built_net_round_trip(tmp_path):
    """The fused net as our fusion code builds it from the fixture's two stream nets."""
    from matconv_port.fusion import FusionOptions, build_fused_netspec

    a, b = _spec_of_variable(FUSED, "netA_spatial_stream"), _spec_of_variable(FUSED, "netB_temporal_stream")
    model = MatConvNetModel(build_fused_netspec(a, b, FusionOptions(frames=5)))
    out = tmp_path / "fused.mat"
    export_matconvnet(model, str(out))
    back = load_model(str(out))
    _assert_same_params(model, back)
    gen = torch.Generator().manual_seed(0)
    inputs = {"input": torch.randn(10, 3, 40, 40, generator=gen), "input_flow": torch.randn(10, 20, 40, 40, generator=gen),
              "label": torch.tensor([2.0, 5.0])}
    with torch.no_grad():
        ya, yb = model.forward_vars(dict(inputs), num_videos=2), back.forward_vars(dict(inputs), num_videos=2)
    assert ya.keys() == yb.keys() and all(torch.equal(ya[k], yb[k]) for k in ya)


# ----------------------------------------------------------------------------- stock semantics
MCNX = os.path.join(os.path.dirname(HERE), "fixtures", "mcn_extra")
STOCK = os.path.join(os.path.dirname(HERE), "fixtures", "stock")
#: DagNN nets saved by STOCK MatConvNet v1.0-beta25's saveobj (fixtures/stock, fixtures/mcn_extra)
STOCK_SAVED = [os.path.join(STOCK, f) for f in ("dagnn_stock_crop.mat", "dagnn_stock_roipool.mat")] + \
    [os.path.join(MCNX, f) for f in ("stock_conv_dilate.mat", "stock_bnorm_train.mat", "stock_loss_spatial.mat",
                                     "stock_loss_binary.mat", "mcnextra_slice.mat", "mcnextra_pool_flatten.mat")]


@pytest.mark.parametrize("path", STOCK_SAVED, ids=_ids(STOCK_SAVED))
def test_stock_net_struct_equals_stock_saveobj(path):
    """A net with stock semantics is written with stock beta25's classes (Conv/Pooling
    ``dilate``, BatchNorm ``opts``, Loss ``ignoreAverage``): block for block what stock's
    own saveobj wrote."""
    ref = _read(path)["net"]
    model = MatConvNetModel(load_netspec(path), semantics="stock", warn=lambda *a: None)
    ours = netspec_to_dagnn_struct(model.to_netspec())
    assert ours["layers"].fields == ref["layers"].fields and ours["layers"].shape == ref["layers"].shape
    for a, b in zip(ours["layers"], ref["layers"]):
        assert list(a["block"]) == list(b["block"]), a["name"]
        assert mat_equal(a, b), a["name"]
    assert mat_equal(ours["vars"], ref["vars"])


def test_dilated_stock_net_round_trips_semantics_and_every_var(tmp_path):
    """export -> convert keeps stock semantics (detected again from the written evidence)
    and the dilation: every var equal to the original model's and to stock MatConvNet's."""
    from parity_utils import RTOL_FP32, load_case, relative_error

    path = os.path.join(MCNX, "stock_conv_dilate.mat")
    model = load_model(path)
    assert model.semantics == "stock"
    out = tmp_path / "net.mat"
    export_matconvnet(model, str(out))
    saved = read_mat(str(out))["net"]
    blocks = {l["name"]: l["block"] for l in saved["layers"]}
    assert blocks["c1"]["dilate"].tolist() == [[2.0, 3.0]] and blocks["c2"]["dilate"].tolist() == [[2.0, 2.0]]
    assert list(blocks["bn"]) == ["numChannels", "epsilon", "opts"] and blocks["bn"]["epsilon"].tolist() == [[1e-5]]
    assert "ignoreAverage" in blocks["loss"]
    back = load_model(str(out))
    assert back.semantics == "stock" and back.semantics_choice.how == "detected"
    case = load_case(path)
    with torch.no_grad():
        ya = model.forward_vars(dict(case.inputs), num_videos=case.num_videos)
        yb = back.forward_vars(dict(case.inputs), num_videos=case.num_videos)
    assert ya.keys() == yb.keys()
    for k in ya:
        assert torch.equal(ya[k], yb[k]), k
    for k in case.expected:
        if k not in case.inputs:
            assert relative_error(yb[k], case.expected[k]) <= RTOL_FP32, k


def test_fork_semantics_refuses_to_drop_a_dilation(tmp_path):
    model = load_model(os.path.join(MCNX, "stock_conv_dilate.mat"), semantics="fork")
    out = tmp_path / "net.mat"
    with pytest.raises(MatConvPortError, match=r"layer 'c1' \(dagnn.Conv\) has dilate \[2.0, 3.0\].*--semantics stock"):
        export_matconvnet(model, str(out))
    assert not os.listdir(tmp_path)


def test_fork_net_keeps_fork_classes_and_stock_simplenn_keeps_its_epsilon(tmp_path):
    fork = netspec_to_dagnn_struct(load_model(os.path.join(MCNX, "fork_bnorm_train.mat")).to_netspec())
    assert [list(l["block"]) for l in fork["layers"]] == [["numChannels", "epsilon"]] * 2
    # stock SimpleNN: vl_simplenn runs bnorm with the layer's epsilon; the DagNN written keeps it
    path = os.path.join(MCNX, "stock_simplenn_bnorm_train.mat")
    model = load_model(path)
    assert model.semantics == "stock"
    out = tmp_path / "net.mat"
    export_matconvnet(model, str(out))
    layers = {l["name"]: l for l in read_mat(str(out))["net"]["layers"]}
    assert layers["conv1"]["block"]["dilate"].tolist() == [[1.0, 1.0]]
    assert layers["bn1"]["block"]["epsilon"].tolist() == [[1e-2]] and layers["bn2"]["block"]["epsilon"].tolist() == [[1e-5]]
    assert list(layers["bn1"]["block"]["opts"]) == ["NoCuDNN"]
    back = load_model(str(out))
    assert back.semantics == "stock"
    eps = {m.layer_name: m.epsilon for m in back.modules() if hasattr(m, "epsilon") and hasattr(m, "layer_name")}
    assert eps == {"bn1": pytest.approx(1e-2), "bn2": pytest.approx(1e-5)}
