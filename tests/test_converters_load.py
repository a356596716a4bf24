"""load_netspec: every reference and real model file, SimpleNN tidy + fromSimpleNN
semantics, DagNN var order and shared params, output pruning, and one-line errors."""
from __future__ import annotations

import collections
import glob
import os

import numpy as np
import pytest
from matconv_port.converters import (
    MatCell,
    MatStructArray,
    load_netspec,
    netspec_from_variables,
    read_mat,
    write_mat,
)
from parity_utils import FIXTURES, REAL_MODELS

from matconv_port.errors import MatFileError, ModelFormatError

REF_DIR = os.path.join(FIXTURES, "reference")
REAL_DIR = REAL_MODELS
needs_real = pytest.mark.skipif(not os.path.isdir(REAL_DIR), reason=f"{REAL_DIR} not present on this machine")


def ref(name: str) -> str:
    return os.path.join(REF_DIR, name)


def real(name: str) -> str:
    return os.path.join(REAL_DIR, name)


def types(spec) -> dict[str, int]:
    return dict(collections.Counter(layer.type for layer in spec.layers))


# ------------------------------------------------------------------ reference files
@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REF_DIR, "*.mat"))), ids=os.path.basename)
def test_every_reference_file_loads(path):
    spec = load_netspec(path)
    assert spec.layers and spec.source == path
    for layer in spec.layers:
        assert all(p in spec.params for p in layer.params)


def test_simplenn_names_follow_fromsimplenn_and_the_reference_outputs():
    data = read_mat(ref("simplenn_chain_a.mat"))
    spec = load_netspec(ref("simplenn_chain_a.mat"))
    # the reference names its outputs x<i>_<layer name> (unnamed layers: layer<i>)
    expected = [n.split("_", 1)[1] for n in data["output_order"][1:]]
    assert [l.name for l in spec.layers] == expected
    assert spec.var_names() == [f"x{i}" for i in range(len(spec.layers) + 1)]
    for i, layer in enumerate(spec.layers, start=1):
        assert layer.inputs == [f"x{i - 1}"] and layer.outputs == [f"x{i}"]
    assert spec.source_format == "simplenn"


def test_simplenn_blocks_and_params_mirror_the_layers():
    net = read_mat(ref("simplenn_chain_a.mat"))["net"]
    spec = load_netspec(ref("simplenn_chain_a.mat"))
    for raw, layer in zip(net["layers"], spec.layers):
        if raw["type"] == "conv":
            assert layer.type == "dagnn.Conv"
            assert layer.params == [f"{layer.name}f", f"{layer.name}b"]
            np.testing.assert_array_equal(spec.params[f"{layer.name}f"].value, raw["weights"][0])
            np.testing.assert_array_equal(spec.params[f"{layer.name}b"].value, raw["weights"][1])
            assert layer.block["size"] == [float(s) for s in (list(raw["weights"][0].shape) + [1] * 4)[:4]]
            assert list(layer.block) == ["size", "hasBias", "opts", "pad", "stride"]
            pad = raw["pad"].reshape(-1).tolist()
            assert layer.block["pad"] == (pad * 4 if len(pad) == 1 else pad)
        elif raw["type"] == "pool":
            assert layer.type == "dagnn.Pooling" and layer.block["method"] == raw["method"]
            assert layer.block["poolSize"] == (raw["pool"].reshape(-1).tolist() * 2)[: max(2, raw["pool"].size)]
        elif raw["type"] == "bnorm":
            assert layer.params == [f"{layer.name}m", f"{layer.name}b", f"{layer.name}x"]
            np.testing.assert_array_equal(spec.params[f"{layer.name}x"].value, raw["weights"][2])
        elif raw["type"] in ("normalize", "lrn"):
            assert layer.type == "dagnn.LRN" and layer.block["param"] == raw["param"].reshape(-1).tolist()
        elif raw["type"] == "relu":
            assert layer.block["leak"] == float(raw["leak"].reshape(-1)[0])


def test_simplenn_blocks_match_what_dagnn_saveobj_writes():
    # dagnn_misc_a's first layers were made by fromSimpleNN and saved by saveobj: a
    # SimpleNN conv/relu/pool/bnorm/lrn converted here must have the same block fields
    dag = load_netspec(ref("dagnn_misc_a.mat"))
    simple = load_netspec(ref("simplenn_chain_a.mat"))
    for t in ("dagnn.Conv", "dagnn.ReLU", "dagnn.Pooling", "dagnn.BatchNorm", "dagnn.LRN"):
        d = next(l for l in dag.layers if l.type == t)
        s = next(l for l in simple.layers if l.type == t)
        assert list(s.block) == list(d.block), t


def test_v6_and_v7_give_identical_specs():
    a = load_netspec(ref("simplenn_small_v6.mat"))
    b = load_netspec(ref("simplenn_small_v7.mat"))
    assert [(l.name, l.type, l.inputs, l.outputs, l.params, l.block) for l in a.layers] == \
           [(l.name, l.type, l.inputs, l.outputs, l.params, l.block) for l in b.layers]
    assert list(a.params) == list(b.params)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k].value, b.params[k].value)
        assert a.params[k].value.dtype == b.params[k].value.dtype
    assert a.var_names() == b.var_names()


def test_legacy_file_tidies_like_vl_simplenn_tidy():
    data = read_mat(ref("simplenn_legacy_filters_biases.mat"))
    assert "filters" in data["net"]["layers"][0]  # really the legacy layout
    legacy = netspec_from_variables({"net": data["net"]}, "legacy")
    tidied = netspec_from_variables({"net": data["net_tidy"]}, "net_tidy")
    assert [(l.name, l.type, l.inputs, l.outputs, l.params) for l in legacy.layers] == \
           [(l.name, l.type, l.inputs, l.outputs, l.params) for l in tidied.layers]
    for a, b in zip(legacy.layers, tidied.layers):
        assert a.block == b.block, a.name
    assert list(legacy.params) == list(tidied.params)
    for k in legacy.params:
        np.testing.assert_array_equal(legacy.params[k].value, tidied.params[k].value)
    # top-level normalization/classes moved into meta
    assert set(tidied.meta) >= {"normalization", "classes"}
    assert set(legacy.meta) == set(tidied.meta)
    np.testing.assert_array_equal(legacy.meta["normalization"]["averageImage"],
                                  tidied.meta["normalization"]["averageImage"])
    assert legacy.layers[-1].name == "layer8"  # the unnamed layer


@pytest.mark.parametrize("name", ["dagnn_misc_a.mat", "fusion_twostream_vgg16narrow_a.mat"])
def test_dagnn_var_order_is_the_files(name):
    data = read_mat(ref(name))
    spec = load_netspec(ref(name))
    assert spec.var_names() == list(data["var_order"])
    assert spec.source_format == "dagnn"


def test_dagnn_reference_contents():
    spec = load_netspec(ref("dagnn_misc_a.mat"))
    conv3d = spec.layer("conv3d")
    assert conv3d.type == "dagnn.Conv3D" and conv3d.block["size"] == [3.0, 3.0, 3.0, 12.0, 8.0]
    assert conv3d.block["pad"] == [1.0] * 6 and conv3d.block["hasBias"] is True
    assert spec.layer("pool3d").block["poolSize"] == [2.0, 2.0, 2.0]
    assert spec.layer("cat1").block == {"dim": 3.0}
    assert spec.layer("sum1").block == {} and spec.layer("sum1").inputs == ["x7", "branch_b"]
    assert spec.layer("top1err").block["loss"] == "classerror"
    assert spec.params["bn2m"].learning_rate == 2.0 and spec.params["bn2m"].weight_decay == 0.0
    assert spec.meta["curBatchSize"] == 2.0
    assert isinstance(spec.meta["curNumFrames"], list) and len(spec.meta["curNumFrames"]) == len(spec.layers)


def test_fusion_reference_meta_and_structure():
    spec = load_netspec(ref("fusion_twostream_vgg16narrow_a.mat"))
    assert len(spec.layers) == 83 and len(spec.params) == 66
    avg = spec.meta["normalization"]["averageImage"]
    assert isinstance(avg, np.ndarray) and avg.shape == (1, 1, 23)
    names = spec.meta["classes"]["name"]
    assert isinstance(names, list) and all(isinstance(n, str) for n in names)
    assert spec.layer("conv53D").type == "dagnn.Conv3D"
    assert spec.params["conv3Df"].value.shape[:3] == (3, 3, 3)
    assert set(spec.input_vars()) >= {"input", "input_flow", "label"}


# ------------------------------------------------------------------ output pruning
def test_outputs_keep_only_needed_layers():
    full = load_netspec(ref("dagnn_misc_a.mat"))
    spec = load_netspec(ref("dagnn_misc_a.mat"), outputs=["prediction"])
    names = [l.name for l in spec.layers]
    assert "loss" not in names and "prob" not in names and "top1err" not in names
    assert names[-1] == "fc" and names == [n for n in [l.name for l in full.layers] if n in names]
    assert "label" not in spec.var_names() and "fcf" in spec.params
    # a branch is kept: cat1 needs both sum1 (conv_b branch) and x6
    assert "conv_b" in names and "relu2" in names
    small = load_netspec(ref("dagnn_misc_a.mat"), outputs=["x3"])
    assert [l.name for l in small.layers] == ["conv1", "relu1", "pool1"]
    assert set(small.params) == {"conv1f", "conv1b"}


def test_unknown_output_lists_available_vars():
    with pytest.raises(ModelFormatError) as exc:
        load_netspec(ref("dagnn_misc_a.mat"), outputs=["nope"])
    msg = str(exc.value)
    assert "nope" in msg and "prediction" in msg and "\n" not in msg


# ------------------------------------------------------------------ real models
REAL_EXPECTED = {
    # file: (format, number of layers, {type: count}) as listed in SOURCES.md
    "cszn_DnCNN__DnCNN-epoch-50.mat": ("dagnn", 50, {"dagnn.Conv": 17, "dagnn.ReLU": 16, "dagnn.BatchNorm": 15,
                                                     "dagnn.Sum": 1, "dagnn.Loss": 1}),
    "cszn_DnCNN__sigma25_Bnorm.mat": ("simplenn", 49, {"dagnn.Conv": 17, "dagnn.ReLU": 16, "dagnn.BatchNorm": 15,
                                                       "dagnn.Loss": 1}),
    "cszn_FFDNet__FFDNet_grayscale_retrained.mat": ("simplenn", 32, {"ffdnet.SubP": 2, "ffdnet.SigmaConcat": 1,
                                                                     "dagnn.Conv": 15, "dagnn.ReLU": 14}),
    "imistyrain_MatConvNet-oneclick__net-epoch-50.mat": ("simplenn", 8, {"dagnn.Conv": 3, "dagnn.Pooling": 2,
                                                                         "dagnn.ReLU": 2, "dagnn.Loss": 1}),
    "phoenix104104_LapSRN__LapSRN_x2.mat": ("dagnn", 28, {"dagnn.Conv": 12, "dagnn.ReLU": 12,
                                                          "dagnn.ConvTranspose": 2, "dagnn.Sum": 1,
                                                          "dagnn.vllab_dag_loss": 1}),
    "phoenix104104_LapSRN__MSLapSRN_D5R8.mat": ("dagnn", 567, {"dagnn.Conv": 249, "dagnn.ReLU": 246,
                                                               "dagnn.Sum": 54, "dagnn.ConvTranspose": 12,
                                                               "dagnn.vllab_dag_loss": 6}),
    "lood339_player_detection__net_stage_1.mat": ("simplenn", 8, {"dagnn.Conv": 2, "dagnn.ReLU": 2,
                                                                  "dagnn.Pooling": 2, "dagnn.DropOut": 1,
                                                                  "dagnn.Loss": 1}),
    "lood339_player_detection__net_stage_1_dilation.mat": ("simplenn", 8, {"dagnn.Conv": 2, "dagnn.ReLU": 2,
                                                                           "dpool": 2, "dagnn.DropOut": 1,
                                                                           "dagnn.SoftMax": 1}),
    "lycarter_6.867-finalproj__cifar-lenet_net-epoch-30.mat": ("simplenn", 13, {"dagnn.Conv": 5, "dagnn.ReLU": 4,
                                                                                "dagnn.Pooling": 3,
                                                                                "dagnn.Loss": 1}),
    "foolwood_DCFNet__DCFNet-net-7-125-2.mat": ("simplenn", 4, {"dagnn.Conv": 2, "dagnn.ReLU": 1, "dagnn.LRN": 1}),
    "Sunbaoli_DSR__x16_net-epoch-108.mat": ("dagnn", 51, {"dagnn.Conv": 22, "dagnn.ReLU": 20, "dagnn.BatchNorm": 2,
                                                          "dagnn.Concat": 2, "dagnn.Sum": 1, "dagnn.SoftMax": 1,
                                                          "dagnn.Loss": 1, "dagnn.Slice": 1, "dagnn.lpLoss": 1}),
    "layumi_visualize_face_detection_net__f12net_c.mat": ("simplenn", 10, {"dagnn.Conv": 3, "dagnn.BatchNorm": 3,
                                                                           "dagnn.Pooling": 1, "dagnn.ReLU": 3}),
    "rachillesf_HumanConvNet__charscnn.mat": ("simplenn", 9, {"dagnn.Conv": 4, "dagnn.Pooling": 2,
                                                              "dagnn.ReLU": 3}),
    "brando90_MatConvNet_workspace__text-small_net-epoch-20.mat": ("simplenn", 6, {"dagnn.Conv": 3,
                                                                                   "dagnn.ReLU": 2, "custom": 1}),
}


@needs_real
@pytest.mark.parametrize("name", sorted(REAL_EXPECTED))
def test_real_models_layer_counts_and_types(name):
    fmt, count, expected = REAL_EXPECTED[name]
    spec = load_netspec(real(name))
    assert spec.source_format == fmt
    assert len(spec.layers) == count
    assert types(spec) == expected
    assert len({l.name for l in spec.layers}) == count
    for layer in spec.layers:
        assert all(p in spec.params for p in layer.params)


@needs_real
def test_real_dagnn_params_and_vars():
    dn = load_netspec(real("cszn_DnCNN__DnCNN-epoch-50.mat"))
    assert len(dn.params) == 79 and len(dn.vars) == 52
    assert dn.params["conv1_f"].value.shape == (3, 3, 1, 64)
    assert dn.meta == {}
    assert dn.layers[0].block["hasBias"] is True and dn.layers[0].block["size"] == [3.0, 3.0, 1.0, 64.0]
    assert dn.layer(next(l.name for l in dn.layers if l.type == "dagnn.Loss")).block["loss"] == "L2"
    ds = load_netspec(real("Sunbaoli_DSR__x16_net-epoch-108.mat"))
    assert len(ds.params) == 35
    nobias = [l for l in ds.layers if l.type == "dagnn.Conv" and l.block["hasBias"] is False]
    assert len(nobias) == 15 and all(len(l.params) == 1 for l in nobias)
    assert set(ds.input_vars()) >= {"input_g", "input_d"}
    lap = load_netspec(real("phoenix104104_LapSRN__LapSRN_x2.mat"))
    assert len(lap.params) == 27
    assert all(l.block["leak"] == 0.2 for l in lap.layers if l.type == "dagnn.ReLU")
    convt = next(l for l in lap.layers if l.type == "dagnn.ConvTranspose")
    assert convt.block["upsample"] == [2.0, 2.0] and convt.block["crop"] == [0.0, 1.0, 0.0, 1.0]


@needs_real
def test_mslapsrn_shared_params_stay_17():
    spec = load_netspec(real("phoenix104104_LapSRN__MSLapSRN_D5R8.mat"))
    assert len(spec.params) == 17
    uses = collections.Counter(p for l in spec.layers for p in l.params)
    assert set(uses) == set(spec.params) and all(n > 1 for n in uses.values())
    assert {"x2SR_LR", "x4SR_LR", "x8SR_LR"} <= set(spec.input_vars())


@needs_real
def test_real_simplenn_quirks():
    # unnamed layers and softmaxloss naming (loss<i> after an unnamed layer)
    ly = load_netspec(real("lycarter_6.867-finalproj__cifar-lenet_net-epoch-30.mat"))
    assert ly.layers[0].name == "layer1" and ly.layers[-1].name == "loss13"
    assert ly.layers[-1].inputs == ["x12", "label"] and ly.layers[-1].block["loss"] == "softmaxlog"
    assert ly.layers[2].block["pad"] == [0.0, 1.0, 0.0, 1.0]
    assert ly.params["layer1f"].learning_rate == 0.1 and ly.params["layer1b"].learning_rate == 2.0
    # named previous layer -> loss_<name>
    im = load_netspec(real("imistyrain_MatConvNet-oneclick__net-epoch-50.mat"))
    assert im.layers[-1].name == "loss_layer7"
    assert im.meta["inputSize"] == [20.0, 20.0, 1.0]
    assert isinstance(im.meta["normalization"]["averageImage"], np.ndarray)
    # -struct file, bnorm without moments, imageMean kept
    lay = load_netspec(real("layumi_visualize_face_detection_net__f12net_c.mat"))
    bn = [l for l in lay.layers if l.type == "dagnn.BatchNorm"]
    assert all(l.block.get("hasMoments") is False and len(l.params) == 2 for l in bn)
    assert len(lay.params) == 12
    assert abs(float(np.asarray(lay.meta["imageMean"]).reshape(-1)[0]) - 0.4134) < 1e-3
    # legacy filters/biases in a -struct file
    ch = load_netspec(real("rachillesf_HumanConvNet__charscnn.mat"))
    assert ch.params["layer1f"].value.shape == (5, 5, 1, 20) and ch.params["layer1b"].value.shape == (1, 20)
    # lrn under its SimpleNN name
    dcf = load_netspec(real("foolwood_DCFNet__DCFNet-net-7-125-2.mat"))
    lrn = next(l for l in dcf.layers if l.type == "dagnn.LRN")
    assert lrn.block["param"] == pytest.approx([5, 1, 2e-5, 0.75])
    assert dcf.meta["normalization"]["averageImage"].shape == (1, 1, 3)
    assert dcf.meta["arch"] == "DCFNet"


@needs_real
def test_real_unknown_and_opaque_layers_are_kept():
    ff = load_netspec(real("cszn_FFDNet__FFDNet_grayscale_retrained.mat"))
    subp = [l for l in ff.layers if l.type == "ffdnet.SubP"]  # FFDNet's types (matconv_port/layers/ffdnet.py)
    assert [l.block["scale"] for l in subp] == [0.5, 2.0] and all(l.params == [] for l in subp)
    assert ff.layers[1].type == "ffdnet.SigmaConcat" and ff.layers[1].inputs == ["x1", "sigmas"]
    assert ff.params[f"{ff.layers[2].name}f"].value.shape == (3, 3, 5, 64)
    assert ff.layers[2].block["dilate"] == [1.0, 1.0]
    br = load_netspec(real("brando90_MatConvNet_workspace__text-small_net-epoch-20.mat"))
    custom = br.layers[-1]
    assert custom.type == "custom" and isinstance(custom.block["forward"], str)
    assert "function_handle" in custom.block["forward"]
    dn = load_netspec(real("cszn_DnCNN__sigma25_Bnorm.mat"))
    # the SimpleNN `loss` layer (its `class` field is an opaque MCOS reference, tolerated)
    # runs as vl_simplenn runs it: vl_nnloss(x, label), the label becoming an input var
    assert dn.layers[-1].type == "dagnn.Loss" and dn.layers[-1].inputs == ["x48", "label"]
    dp = load_netspec(real("lood339_player_detection__net_stage_1_dilation.mat"))
    pool = next(l for l in dp.layers if l.type == "dpool")
    assert pool.block["method"] == "max" and pool.block["pool"] == [3.0, 3.0]


# ------------------------------------------------------------------ errors
def _conv(name="c1", w=(3, 3, 1, 4), b=4, **extra) -> dict:
    layer = {"type": "conv", "name": name,
             "weights": MatCell([np.ones(w, dtype=np.float32), np.zeros((1, b), dtype=np.float32)]),
             "pad": np.array([[0.0]]), "stride": np.array([[1.0]])}
    layer.update(extra)
    return layer


def _write(tmp_path, variables, name="net.mat"):
    path = str(tmp_path / name)
    write_mat(path, variables, version="7")
    return path


def _err(path, **kw) -> str:
    with pytest.raises(ModelFormatError) as exc:
        load_netspec(path, **kw)
    msg = str(exc.value)
    assert "\n" not in msg and path in msg
    return msg


def test_file_without_a_net(tmp_path):
    path = _write(tmp_path, {"a": np.ones((2, 2)), "weights": MatCell([1.0]), "info": {"x": 1.0}})
    msg = _err(path)
    assert "no MatConvNet network found" in msg and "a, weights, info" in msg


def test_layer_without_type(tmp_path):
    path = _write(tmp_path, {"net": {"layers": MatCell([_conv(), {"name": "mystery", "leak": 0.0}])}})
    msg = _err(path)
    assert "mystery" in msg and "type" in msg


def test_conv_without_weights(tmp_path):
    path = _write(tmp_path, {"net": {"layers": MatCell([{"type": "conv", "name": "c1", "pad": 0.0}])}})
    msg = _err(path)
    assert "c1" in msg and "weights" in msg


def test_filter_bias_mismatch(tmp_path):
    path = _write(tmp_path, {"net": {"layers": MatCell([_conv("conv9", b=5)])}})
    msg = _err(path)
    assert "conv9" in msg and "bias" in msg


def test_duplicate_simplenn_layer_names(tmp_path):
    path = _write(tmp_path, {"net": {"layers": MatCell([_conv("same"), {"type": "relu", "name": "same"}])}})
    assert "same" in _err(path)


def _dag(layers, params, vars_):
    return {"vars": MatStructArray(vars_), "params": MatStructArray(params), "layers": MatStructArray(layers),
            "meta": {}}


def _dag_layer(name, inputs, outputs, params):
    return {"name": name, "type": "dagnn.Conv", "inputs": MatCell(inputs), "outputs": MatCell(outputs),
            "params": MatCell(params), "block": {"size": np.array([[1.0, 1.0, 1.0, 1.0]])}}


def _param(name):
    return {"name": name, "value": np.ones((1, 1), dtype=np.float32), "learningRate": 1.0, "weightDecay": 1.0}


def test_dagnn_missing_param(tmp_path):
    net = _dag([_dag_layer("convA", ["x0"], ["x1"], ["wA"]), _dag_layer("convB", ["x1"], ["x2"], ["wMissing"])],
               [_param("wA"), _param("wB")], [{"name": n, "precious": False} for n in ("x0", "x1", "x2")])
    msg = _err(_write(tmp_path, {"net": net}))
    assert "convB" in msg and "wMissing" in msg


def test_dagnn_duplicate_layer_name(tmp_path):
    net = _dag([_dag_layer("dup", ["x0"], ["x1"], ["wA"]), _dag_layer("dup", ["x1"], ["x2"], ["wB"])],
               [_param("wA"), _param("wB")], [{"name": n, "precious": False} for n in ("x0", "x1", "x2")])
    assert "dup" in _err(_write(tmp_path, {"net": net}))


def test_dagnn_round_trip_through_v73_and_checkpoint_layout(tmp_path):
    net = _dag([_dag_layer("convA", ["x0"], ["x1"], ["w"]), _dag_layer("convB", ["x1"], ["x2"], ["w"])],
               [_param("w")], [{"name": n, "precious": n == "x2"} for n in ("x2", "x0", "x1")])
    path = str(tmp_path / "net-epoch-3.mat")
    write_mat(path, {"net": net, "stats": {"train": MatStructArray([{"objective": 1.0}, {"objective": 0.5}])},
                     "state": {}}, version="7.3")
    spec = load_netspec(path)
    assert spec.var_names() == ["x2", "x0", "x1"] and spec.vars[0].precious is True
    assert list(spec.params) == ["w"] and [l.params for l in spec.layers] == [["w"], ["w"]]


def test_struct_saved_file_and_nested_net(tmp_path):
    layers = MatCell([_conv("c1"), {"type": "relu", "name": "r1"}])
    a = load_netspec(_write(tmp_path, {"layers": layers, "meta": {"inputSize": np.array([[8.0, 8.0, 1.0]])}}, "a.mat"))
    b = load_netspec(_write(tmp_path, {"model": {"net": {"layers": layers}}}, "b.mat"))
    assert [l.name for l in a.layers] == [l.name for l in b.layers] == ["c1", "r1"]
    assert a.meta == {"inputSize": [8.0, 8.0, 1.0]} and b.meta == {}
    assert a.layers[1].block == {"useShortCircuit": True, "leak": 0.0, "opts": []}


def test_not_a_mat_file_is_a_matfile_error(tmp_path):
    path = tmp_path / "model.mat"
    path.write_text("hello")
    with pytest.raises(MatFileError):
        load_netspec(str(path))


def test_two_softmaxloss_labels_follow_getnewvarname(tmp_path):
    layers = MatCell([_conv("c1"), {"type": "softmaxloss"}, {"type": "relu", "name": "r"},
                      {"type": "softmaxloss"}])
    spec = load_netspec(_write(tmp_path, {"net": {"layers": layers}}))
    assert [l.name for l in spec.layers] == ["c1", "loss_c1", "r", "loss_r"]
    assert spec.layers[1].inputs == ["x1", "label"] and spec.layers[3].inputs == ["x3", "label1"]
