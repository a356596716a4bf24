"""NetSpec surgery with dagnn.DagNN semantics (var/param order, addLayerAt inserting
AFTER position f, rebuild dropping unused vars/params)."""
from __future__ import annotations

import numpy as np
import pytest

from matconv_port.errors import ModelFormatError
from matconv_port.fusion import surgery as S
from matconv_port.netspec import LayerSpec, NetSpec, ParamSpec, VarSpec


def _chain() -> NetSpec:
    layers = [
        LayerSpec("conv1", "dagnn.Conv", ["input"], ["x1"], ["conv1f", "conv1b"], {}),
        LayerSpec("relu1", "dagnn.ReLU", ["x1"], ["x2"], [], {}),
        LayerSpec("fc", "dagnn.Conv", ["x2"], ["x3"], ["fcf", "fcb"], {}),
        LayerSpec("loss", "dagnn.Loss", ["x3", "label"], ["objective"], [], {}),
    ]
    params = [ParamSpec(n, np.zeros((1, 1, 2, 2), np.float32) if n.endswith("f") else np.zeros((1, 2), np.float32))
              for n in ("conv1f", "conv1b", "fcf", "fcb")]
    # saved var order deliberately differs from first appearance
    vars_ = [VarSpec(n, n == "x2") for n in ("label", "input", "x1", "x2", "x3", "objective")]
    return S.from_layers(layers, params, {}, vars_)


def test_from_layers_orders_by_first_appearance_and_keeps_precious():
    spec = _chain()
    assert [v.name for v in spec.vars] == ["input", "x1", "x2", "x3", "label", "objective"]
    assert [v.name for v in spec.vars if v.precious] == ["x2"]
    assert list(spec.params) == ["conv1f", "conv1b", "fcf", "fcb"]


def test_add_layer_at_inserts_after_position_and_appends_new_vars_and_params():
    spec = _chain()
    S.add_layer_at(spec, 1, "extra", "dagnn.Conv", {}, ["x2"], ["y"], ["ef", "eb"])
    assert [l.name for l in spec.layers] == ["conv1", "relu1", "extra", "fc", "loss"]
    assert spec.vars[-1].name == "y"
    assert list(spec.params)[-2:] == ["ef", "eb"]
    assert spec.params["ef"].value is None and spec.params["ef"].learning_rate == 1.0
    S.add_layer_at(spec, -1, "first", "dagnn.ReLU", {}, ["input"], ["z"])
    assert spec.layers[0].name == "first"
    with pytest.raises(ModelFormatError):
        S.add_layer_at(spec, 0, "fc", "dagnn.ReLU", {}, ["x1"], ["q"])


def test_rename_var_in_place_or_merge():
    spec = _chain()
    S.rename_var(spec, "x1", "x1_s")
    assert [v.name for v in spec.vars][:3] == ["input", "x1_s", "x2"]
    assert spec.layers[0].outputs == ["x1_s"] and spec.layers[1].inputs == ["x1_s"]
    # renaming onto an existing var: the old slot becomes unused and is dropped
    spec.layers[1].outputs = ["x2"]
    S.rename_var(spec, "x3", "x2")
    assert "x3" not in [v.name for v in spec.vars]
    S.rename_var(spec, "nope", "other")  # MATLAB only warns


def test_rename_param_keeps_position_and_value():
    spec = _chain()
    spec.params["fcf"].value = np.ones((1, 1, 2, 2), np.float32)
    S.rename_param(spec, "fcf", "fcf_x")
    assert list(spec.params) == ["conv1f", "conv1b", "fcf_x", "fcb"]
    assert spec.layers[2].params == ["fcf_x", "fcb"]
    assert spec.params["fcf_x"].value.sum() == 4
    with pytest.raises(ModelFormatError):
        S.rename_param(spec, "fcb", "conv1f")


def test_remove_layer_with_and_without_chaining():
    spec = _chain()
    S.remove_layer(spec, "relu1")
    assert spec.layers[1].inputs == ["x1"] and "x2" not in [v.name for v in spec.vars]
    spec = _chain()
    S.remove_layer(spec, "fc", chain_inputs=False)
    assert spec.layers[-1].inputs == ["x3", "label"]
    assert "fcf" not in spec.params  # unused params dropped by rebuild


def test_set_lr_wd_slots_and_batchnorm():
    spec = _chain()
    spec.layers.append(LayerSpec("bn", "dagnn.BatchNorm", ["x3"], ["x4"], ["bnm", "bnb", "bnx"], {}))
    for n, shape in (("bnm", (1, 1, 2)), ("bnb", (2, 1)), ("bnx", (2, 2))):
        spec.params[n] = ParamSpec(n, np.zeros(shape, np.float32), 7.0, 7.0)
    spec.params["conv1f"].learning_rate = 5.0
    S.set_lr_wd(spec)
    got = {n: (p.learning_rate, p.weight_decay) for n, p in spec.params.items()}
    assert got["conv1f"] == (1.0, 1.0) and got["conv1b"] == (2.0, 0.0)
    assert got["bnm"] == (2.0, 0.0) and got["bnb"] == (1.0, 0.0) and got["bnx"] == (0.05, 0.0)
    assert spec.params["bnm"].value.shape == (2, 1)  # squeezed like MATLAB


def test_find_layers_is_substring_match():
    spec = _chain()
    assert S.find_layers(spec, "conv") == [0]
    assert S.find_layers(spec, "l") == [1, 3]


def test_from_layers_refuses_duplicate_layer_names():
    l1 = LayerSpec("a", "dagnn.ReLU", ["x"], ["y"])
    l2 = LayerSpec("a", "dagnn.ReLU", ["y"], ["z"])
    with pytest.raises(ModelFormatError, match="'a'"):
        S.from_layers([l1, l2])
