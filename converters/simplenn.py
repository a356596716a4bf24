"""SimpleNN nets -> :class:`NetSpec`, as MatConvNet itself does it:
``vl_simplenn_tidy`` (``matlab/simplenn/vl_simplenn_tidy.m``) then
``dagnn.DagNN.fromSimpleNN`` (``matlab/+dagnn/@DagNN/fromSimpleNN.m``).

Tidy: legacy ``filters``/``biases`` -> ``weights = {filters, biases}``; top-level
``classes``/``normalization`` -> ``meta``; defaults ``precious=false``; conv/pool:
``pad=0, stride=1, opts={}`` (a missing pool ``method`` is NOT filled by tidy; it is
``'max'`` here, ``vl_nnpool``'s default); convt: ``crop=0, upsample=1, numGroups=1,
opts={}``; relu ``leak=0``; dropout ``rate=0.5``; normalize/lrn ``param=[5 1 1e-4/5 0.75]``.
A bnorm with fewer than 3 weights gets no moments param (tidy would add zeros, which
make test-mode bnorm divide by zero): its block says ``hasMoments: False``.

fromSimpleNN: vars ``x0``..``xL`` (``x_i`` = output of layer i, 1-based), unnamed layer i
is ``layer<i>``; conv/convt params ``<name>f``, ``<name>b`` (no bias param when the bias
is empty); bnorm ``<name>m`` (multipliers), ``<name>b``, ``<name>x`` (moments);
``softmaxloss`` -> ``dagnn.Loss`` (``loss='softmaxlog'``) named ``loss_<previous layer
name>`` (``loss<i>`` if that layer has no name) with a second input ``label``, then
``label1``, ``label2``... (fromSimpleNN's ``getNewVarName``). Blocks hold the
properties ``saveobj`` would write for the DagNN block (setter-normalised: a scalar
``pad`` -> 4 values, a scalar ``stride`` -> 2, ``size`` padded to 4 dims).

``pdist`` (which fromSimpleNN refuses) -> ``dagnn.PDist`` with ``vl_simplenn``'s
second operand ``l.class`` as a label var (like ``loss``) and the tidied fields as the
DagNN block (``p``, ``aggregate``; ``noRoot``, ``epsilon``, ``instanceWeights`` in ``opts``);
``noffset``/``spnorm`` -> ``dagnn.NormOffset``/``dagnn.SpatialNorm`` (registered) with
their ``param``.

Types fromSimpleNN does not know (``SubP``, ``dpool``, ``custom``, ...; ``loss`` is run as
``dagnn.Loss`` like vl_simplenn runs it) keep
their SimpleNN type (or the DagNN type a registered custom layer claims) and all
their fields as the block (except ``name``, ``type``, ``weights`` and the optimiser
state ``momentum``); non-empty ``weights`` become params ``<name>_w1``, ``<name>_w2``...
"""
from __future__ import annotations

from typing import Any

import numpy as np

from matconv_port.errors import ModelFormatError
from matconv_port.netspec import LayerSpec, NetSpec, ParamSpec, VarSpec

from .mattypes import MatCell, MatStructArray
from .plain import meta_to_plain, to_plain

#: fromSimpleNN's fixed mapping (what MatConvNet does; the registry may add more)
FROM_SIMPLENN_TYPES = {
    "conv": "dagnn.Conv", "convt": "dagnn.ConvTranspose", "pool": "dagnn.Pooling",
    "normalize": "dagnn.LRN", "lrn": "dagnn.LRN", "dropout": "dagnn.DropOut",
    "relu": "dagnn.ReLU", "sigmoid": "dagnn.Sigmoid", "softmax": "dagnn.SoftMax",
    "softmaxloss": "dagnn.Loss", "bnorm": "dagnn.BatchNorm",
    # not in fromSimpleNN, but vl_simplenn runs it as vl_nnloss(x, l.class)
    "loss": "dagnn.Loss",
}

_TIDY_DEFAULTS: dict[str, list[tuple[str, Any]]] = {
    "conv": [("pad", 0.0), ("stride", 1.0), ("opts", [])],
    "pool": [("pad", 0.0), ("stride", 1.0), ("opts", [])],
    "convt": [("crop", 0.0), ("upsample", 1.0), ("numGroups", 1.0), ("opts", [])],
    "relu": [("leak", 0.0)],
    "dropout": [("rate", 0.5)],
    "normalize": [("param", [5.0, 1.0, 0.0001 / 5, 0.75])],
    "lrn": [("param", [5.0, 1.0, 0.0001 / 5, 0.75])],
    "pdist": [("noRoot", False), ("aggregate", False), ("p", 2.0), ("epsilon", 1e-3), ("instanceWeights", [])],
}


def registered_dagnn_type(simplenn_type: str) -> str | None:
    """The registry's DagNN type for a SimpleNN type, or None (also if the layer
    package cannot be imported)."""
    try:
        from matconv_port.layers.registry import simplenn_to_dagnn_type

        return simplenn_to_dagnn_type(simplenn_type)
    except Exception:  # the registry is optional for reading files
        return None


def _weights_list(value: Any) -> list:
    if isinstance(value, (MatCell, list, tuple)):
        return list(value)
    if isinstance(value, np.ndarray) and value.size == 0:
        return []
    return [value]


def _is_empty(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.size == 0
    if isinstance(value, (list, str, dict)):
        return len(value) == 0
    return value is None


def tidy(net: dict, source: str = "") -> tuple[list[dict], dict]:
    """``vl_simplenn_tidy``: (tidied layers as dicts, meta). ``net`` holds ``layers``
    (a cell of structs) and optionally ``meta``, ``classes``, ``normalization``."""
    meta = dict(net["meta"]) if isinstance(net.get("meta"), dict) else {}
    if "classes" in net:
        meta["classes"] = net["classes"]
    if "normalization" in net:
        meta["normalization"] = net["normalization"]
    raw_layers = net["layers"]
    if isinstance(raw_layers, MatStructArray):
        raw_layers = list(raw_layers)
    layers = []
    for i, layer in enumerate(raw_layers, start=1):
        if isinstance(layer, MatCell) and len(layer) == 1 and isinstance(layer[0], dict):
            layer = layer[0]
        if not isinstance(layer, dict):
            raise ModelFormatError(f"{source}: layers{{{i}}} is not a struct ({type(layer).__name__})")
        layer = dict(layer)
        ltype = layer.get("type")
        if not isinstance(ltype, str) or not ltype:
            raise ModelFormatError(f"{source}: layer {i} ({_layer_label(layer, i)}) has no 'type' field")
        if ltype in ("conv", "convt", "bnorm") and "weights" not in layer:
            if "filters" not in layer:
                raise ModelFormatError(f"{source}: layer {i} ({_layer_label(layer, i)}, {ltype}) has neither "
                                       f"'weights' nor legacy 'filters'")
            layer["weights"] = MatCell([layer.pop("filters"), layer.pop("biases", np.zeros((0, 0)))])
        layer.setdefault("precious", False)
        for key, default in _TIDY_DEFAULTS.get(ltype, []):
            layer.setdefault(key, default)
        layers.append(layer)
    return layers, meta


def _layer_label(layer: dict, index: int) -> str:
    name = layer.get("name")
    return name if isinstance(name, str) else f"layer{index}"


def _expand(value: Any, n: int, pattern: list[int] | None = None) -> list[float]:
    """Filter.set.pad / set.stride semantics: 1 value -> n copies; 2 values for a
    4-vector -> [a a b b]."""
    vals = [float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1, order="F")]
    if len(vals) == 1:
        return vals * n
    if len(vals) == 2 and n == 4:
        return [vals[0], vals[0], vals[1], vals[1]]
    return vals


def _floats(value: Any) -> list[float]:
    return [float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1, order="F")]


def _nth(value: Any, k: int) -> float | None:
    vals = _floats(value) if not _is_empty(value) else []
    return vals[k] if k < len(vals) else None


def from_simplenn(net: dict, source: str = "", extra_meta: dict | None = None) -> NetSpec:
    """Tidy a SimpleNN struct and map it to a DagNN :class:`NetSpec` (fromSimpleNN)."""
    layers, meta = tidy(net, source)
    if extra_meta:
        meta = {**meta, **extra_meta}
    spec = NetSpec(meta=meta_to_plain(meta), source_format="simplenn", source=source)
    var_names: list[str] = []

    def add_var(name: str) -> None:
        if name not in var_names:
            var_names.append(name)

    def new_var_name(prefix: str) -> str:
        name, t = prefix, 0
        while name in var_names:
            t += 1
            name = f"{prefix}{t}"
        return name

    layer_names: set[str] = set()
    for l, layer in enumerate(layers, start=1):
        ltype = layer["type"]
        name = layer["name"] if isinstance(layer.get("name"), str) else f"layer{l}"
        inputs, outputs = [f"x{l - 1}"], [f"x{l}"]
        params: list[ParamSpec] = []
        where = f"{source}: layer {l} ({name}, {ltype})"

        if ltype in ("conv", "convt"):
            w = _weights_list(layer["weights"])
            if not w or _is_empty(w[0]) or not isinstance(w[0], np.ndarray):
                raise ModelFormatError(f"{where}: missing filter weights")
            filt = w[0]
            bias = w[1] if len(w) > 1 else np.zeros((0, 0))
            has_bias = not _is_empty(bias)
            size = (list(filt.shape) + [1, 1, 1, 1])[:4] if filt.ndim <= 4 else list(filt.shape)
            size = [float(s) for s in size]
            params.append(ParamSpec(f"{name}f", filt))
            if has_bias:
                if not isinstance(bias, np.ndarray):
                    raise ModelFormatError(f"{where}: bias is not a numeric array")
                params.append(ParamSpec(f"{name}b", bias))
            for field, attr in (("learningRate", "learning_rate"), ("weightDecay", "weight_decay")):
                if field in layer:
                    for k, p in enumerate(params):
                        v = _nth(layer[field], k)
                        if v is not None:
                            setattr(p, attr, v)
            if ltype == "conv":
                expected = size[3]
                if has_bias and bias.size != expected:
                    raise ModelFormatError(f"{where}: filter {tuple(filt.shape)} has {int(expected)} output "
                                           f"channels but the bias has {bias.size} elements")
                block = {"size": size, "hasBias": has_bias, "opts": to_plain(layer["opts"]),
                         "pad": _expand(layer["pad"], 4), "stride": _expand(layer["stride"], 2)}
                if "dilate" in layer:
                    block["dilate"] = _expand(layer["dilate"], 2)
            else:
                groups = float(np.asarray(layer["numGroups"], dtype=np.float64).reshape(-1)[0])
                expected = size[2] * groups
                if has_bias and bias.size != expected:
                    raise ModelFormatError(f"{where}: convt filter {tuple(filt.shape)} with {int(groups)} group(s) "
                                           f"has {int(expected)} output channels but the bias has {bias.size} elements")
                block = {"size": size, "hasBias": has_bias, "upsample": _expand(layer["upsample"], 2),
                         "crop": _expand(layer["crop"], 4), "numGroups": groups, "opts": to_plain(layer["opts"])}
        elif ltype == "pool":
            if "pool" not in layer:
                raise ModelFormatError(f"{where}: missing 'pool' (pool size)")
            method = layer.get("method", "max")
            block = {"method": method if isinstance(method, str) else "max",
                     "poolSize": _expand(layer["pool"], 2), "opts": to_plain(layer["opts"]),
                     "pad": _expand(layer["pad"], 4), "stride": _expand(layer["stride"], 2)}
        elif ltype in ("normalize", "lrn"):
            block = {"param": _floats(layer["param"])}
        elif ltype == "dropout":
            block = {"rate": float(_floats(layer["rate"])[0]), "frozen": False}
        elif ltype == "relu":
            leak = _floats(layer["leak"]) if not _is_empty(layer["leak"]) else [0.0]
            block = {"useShortCircuit": True, "leak": leak[0], "opts": []}
        elif ltype in ("sigmoid", "softmax"):
            block = {}
        elif ltype == "softmaxloss":
            # fromSimpleNN names it after the previous layer (it cannot convert a net
            # starting with a loss; vl_simplenn runs one: keep the layer's own name then)
            prev = layers[l - 2] if l > 1 else {}
            if isinstance(prev.get("name"), str):
                name = f"loss_{prev['name']}"
            elif l > 1 or not isinstance(layer.get("name"), str):
                name = f"loss{l}"
            for v in inputs:
                add_var(v)
            inputs.append(new_var_name("label"))
            block = {"loss": "softmaxlog", "opts": []}
        elif ltype == "loss":
            # vl_simplenn: res(i+1).x = vl_nnloss(res(i).x, l.class): softmaxlog whatever the layer's
            # own `loss` field says (fork and stock alike); that field is kept to be reported
            loss = layer.get("loss")
            for v in inputs:
                add_var(v)
            inputs.append(new_var_name("label"))
            block = {"loss": "softmaxlog", "opts": []}
            if isinstance(loss, str) and loss and loss.lower() != "softmaxlog":
                block["simplennLossField"] = loss
        elif ltype == "pdist":
            # not in fromSimpleNN (stock beta25 refuses it); vl_simplenn runs
            # vl_nnpdist(x, l.class, l.p, ...): the target becomes a label var, as for `loss`
            for v in inputs:
                add_var(v)
            inputs.append(new_var_name("label"))
            # the block of the equivalent dagnn.PDist: vl_nnpdist's other options go to `opts`
            opts = ["noRoot", bool(_floats(layer["noRoot"])[0]) if not _is_empty(layer["noRoot"]) else False,
                    "epsilon", float(_floats(layer["epsilon"])[0]) if not _is_empty(layer["epsilon"]) else 1e-3]
            if not _is_empty(layer.get("instanceWeights")):
                opts += ["instanceWeights", meta_to_plain(layer["instanceWeights"])]  # an array keeps its shape
            block = {"p": float(_floats(layer["p"])[0]) if not _is_empty(layer["p"]) else 2.0,
                     "aggregate": bool(_floats(layer["aggregate"])[0]) if not _is_empty(layer["aggregate"]) else False,
                     "loss": "pdist", "ignoreAverage": False, "opts": opts}
        elif ltype == "bnorm":
            w = _weights_list(layer["weights"])
            if len(w) < 2 or any(not isinstance(x, np.ndarray) for x in w[:3]):
                raise ModelFormatError(f"{where}: bnorm needs weights {{multipliers, biases[, moments]}}")
            params = [ParamSpec(f"{name}m", w[0]), ParamSpec(f"{name}b", w[1])]
            has_moments = len(w) >= 3 and not _is_empty(w[2])
            if has_moments:
                params.append(ParamSpec(f"{name}x", w[2]))
            if w[0].size != w[1].size:
                raise ModelFormatError(f"{where}: bnorm multipliers ({w[0].size}) and biases ({w[1].size}) differ in size")
            for k, p in enumerate(params):
                if "learningRate" in layer and _nth(layer["learningRate"], k) is not None:
                    p.learning_rate = _nth(layer["learningRate"], k)
                if "weightDecay" in layer:
                    if k == 2:
                        p.weight_decay = 0.0
                    elif _nth(layer["weightDecay"], k) is not None:
                        p.weight_decay = _nth(layer["weightDecay"], k)
            block = {"numChannels": [], "epsilon": 1e-4}
            if "epsilon" in layer and not _is_empty(layer["epsilon"]):
                # stock vl_simplenn passes l.epsilon (its tidy adds 1e-5), the fork's passes none
                # (vl_nnbnorm's 1e-4): dagnn.BatchNorm picks per semantics (matconv_port.semantics)
                block["simplennEpsilon"] = float(_floats(layer["epsilon"])[0])
            if not has_moments:
                block["hasMoments"] = False
        elif ltype == "concat" and registered_dagnn_type("concat") is not None:
            # not MatConvNet's: FFDNet's vl_simplenn concatenates the MATLAB global `sigmas` (the
            # noise level map), which becomes an input var here (matconv_port/layers/ffdnet.py)
            for v in inputs:
                add_var(v)
            inputs.append(new_var_name("sigmas"))
            block = {}
        else:
            block = {k: to_plain(v) for k, v in layer.items() if k not in ("name", "type", "weights", "momentum")}
            for k, wv in enumerate(_weights_list(layer.get("weights", [])), start=1):
                if not _is_empty(wv) and isinstance(wv, np.ndarray):
                    params.append(ParamSpec(f"{name}_w{k}", wv))

        dagnn_type = FROM_SIMPLENN_TYPES.get(ltype) or registered_dagnn_type(ltype) or ltype
        if name in layer_names:
            raise ModelFormatError(f"{source}: there is already a layer with name '{name}' (layer {l})")
        layer_names.add(name)
        for v in inputs + outputs:
            add_var(v)
        for p in params:
            if p.name in spec.params:
                raise ModelFormatError(f"{where}: param '{p.name}' is defined twice")
            spec.params[p.name] = p
        spec.layers.append(LayerSpec(name=name, type=dagnn_type, inputs=inputs, outputs=outputs,
                                     params=[p.name for p in params], block=block))
    spec.vars = [VarSpec(v, False) for v in var_names]
    return spec
