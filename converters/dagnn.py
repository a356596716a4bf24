"""A saved DagNN struct (``dagnn.DagNN.saveobj``) -> :class:`NetSpec`.

``saveobj`` writes struct arrays ``vars`` (name, precious), ``params`` (name, value,
learningRate, weightDecay), ``layers`` (name, type e.g. ``dagnn.Conv``, inputs,
outputs, params as cells of names, block = the block's saved properties) and ``meta``.
``loadobj`` rebuilds the net with ``addLayer`` per layer; params/vars fields are then
copied by name. Here: layers keep the file's order, vars the file's ``vars`` order
(vars used by layers but missing from it are appended in first-use order), params are
keyed by name (a param shared by several layers appears once).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from matconv_port.errors import ModelFormatError
from matconv_port.netspec import LayerSpec, NetSpec, ParamSpec, VarSpec

from .mattypes import MatCell, MatStructArray
from .plain import meta_to_plain, to_plain


def _records(value: Any, what: str, source: str) -> list[dict]:
    """A struct array (or a 1x1 struct, or an empty value) as a list of dicts."""
    if isinstance(value, MatStructArray):
        return list(value)
    if isinstance(value, dict):
        return [value]
    if isinstance(value, np.ndarray) and value.size == 0:
        return []
    if isinstance(value, MatCell) and all(isinstance(v, dict) for v in value):
        return list(value)
    raise ModelFormatError(f"{source}: net.{what} is not a struct array ({type(value).__name__})")


def _names(value: Any, where: str) -> list[str]:
    """A cell of strings (or one string, or an empty value) as a list of str."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, np.ndarray) and value.size == 0:
        return []
    if isinstance(value, (MatCell, list)):
        out = []
        for v in value:
            if not isinstance(v, str):
                raise ModelFormatError(f"{where} holds a {type(v).__name__}, not a name")
            out.append(v)
        return out
    raise ModelFormatError(f"{where} is not a cell array of names ({type(value).__name__})")


def _number(value: Any, default: float, where: str) -> float:
    if value is None or (isinstance(value, np.ndarray) and value.size == 0):
        return default
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ModelFormatError(f"{where} is not a number") from None
    return float(arr[0]) if arr.size else default


def _opts_plain(value: Any) -> Any:
    """A block's ``opts`` cell (name/value pairs such as ``{'instanceWeights', W}``) as a
    list; numeric arrays of more than one element stay ``np.ndarray`` in MATLAB index
    order (their shape matters, e.g. ``1 x 1 x 1 x N`` vs ``H x W x 1 x N`` weights)."""
    if isinstance(value, (MatCell, list, tuple)):
        return [v if isinstance(v, np.ndarray) and v.size > 1 and v.dtype.kind in "biuf" else to_plain(v)
                for v in value]
    return to_plain(value)


def is_dagnn_struct(net: Any) -> bool:
    """True if ``net`` looks like a saved DagNN (layers is a struct array with type/block)."""
    if not isinstance(net, dict) or "layers" not in net:
        return False
    layers = net["layers"]
    if isinstance(layers, MatStructArray):
        return "type" in layers.fields and ("block" in layers.fields or "inputs" in layers.fields)
    if isinstance(layers, dict):
        return "block" in layers or "inputs" in layers
    return False


def from_dagnn(net: dict, source: str = "") -> NetSpec:
    """Convert a saved DagNN struct to a :class:`NetSpec` (validating names and params)."""
    spec = NetSpec(source_format="dagnn", source=source)
    meta = net.get("meta")
    spec.meta = meta_to_plain(meta) if isinstance(meta, dict) else {}

    for i, p in enumerate(_records(net.get("params", np.zeros((0, 0))), "params", source), start=1):
        name = p.get("name")
        if not isinstance(name, str) or not name:
            raise ModelFormatError(f"{source}: net.params({i}) has no name")
        if name in spec.params:
            raise ModelFormatError(f"{source}: param '{name}' appears twice in net.params")
        value = p.get("value", np.zeros((0, 0)))
        if not isinstance(value, np.ndarray):
            raise ModelFormatError(f"{source}: param '{name}' value is not a numeric array ({type(value).__name__})")
        spec.params[name] = ParamSpec(
            name, value,
            learning_rate=_number(p.get("learningRate"), 1.0, f"{source}: param '{name}' learningRate"),
            weight_decay=_number(p.get("weightDecay"), 1.0, f"{source}: param '{name}' weightDecay"))

    layer_names: set[str] = set()
    for i, layer in enumerate(_records(net["layers"], "layers", source), start=1):
        name = layer.get("name")
        if not isinstance(name, str) or not name:
            raise ModelFormatError(f"{source}: net.layers({i}) has no name")
        where = f"{source}: layer '{name}'"
        if name in layer_names:
            raise ModelFormatError(f"{source}: there is already a layer with name '{name}' (layers({i}))")
        layer_names.add(name)
        ltype = layer.get("type")
        if not isinstance(ltype, str) or not ltype:
            raise ModelFormatError(f"{where} has no 'type'")
        inputs = _names(layer.get("inputs", np.zeros((0, 0))), f"{where} inputs")
        outputs = _names(layer.get("outputs", np.zeros((0, 0))), f"{where} outputs")
        params = _names(layer.get("params", np.zeros((0, 0))), f"{where} params")
        for pname in params:
            if pname not in spec.params:
                raise ModelFormatError(f"{where} uses param '{pname}', which is not in net.params")
        block = layer.get("block", {})
        if isinstance(block, np.ndarray) and block.size == 0:
            block = {}
        if not isinstance(block, dict):
            raise ModelFormatError(f"{where}: block is not a struct ({type(block).__name__})")
        spec.layers.append(LayerSpec(name=name, type=ltype, inputs=inputs, outputs=outputs,
                                     params=params, block={k: _opts_plain(v) if k == "opts" else to_plain(v)
                                                           for k, v in block.items()}))

    seen: set[str] = set()
    for i, v in enumerate(_records(net.get("vars", np.zeros((0, 0))), "vars", source), start=1):
        vname = v.get("name")
        if not isinstance(vname, str) or not vname:
            raise ModelFormatError(f"{source}: net.vars({i}) has no name")
        if vname in seen:
            raise ModelFormatError(f"{source}: var '{vname}' appears twice in net.vars")
        seen.add(vname)
        precious = v.get("precious", False)
        precious = bool(np.asarray(precious).reshape(-1)[0]) if np.asarray(precious).size else False
        spec.vars.append(VarSpec(vname, precious))
    for layer in spec.layers:
        for vname in layer.inputs + layer.outputs:
            if vname not in seen:
                seen.add(vname)
                spec.vars.append(VarSpec(vname, False))
    return spec
