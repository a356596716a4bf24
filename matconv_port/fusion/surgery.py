"""Graph surgery on a :class:`~matconv_port.netspec.NetSpec`, with the semantics of
MatConvNet's ``dagnn.DagNN`` methods (the fork shipped with twostreamfusion).

The fusion script builds its net with these methods; reproducing their side effects
exactly (where new vars and params land in ``vars``/``params``, which ones
``rebuild`` drops) is what makes the var and param ORDER of a fused net equal to
MATLAB's. Conventions:

* Layer positions are 0-based here. :func:`add_layer_at` ``after`` is the 0-based
  index of the layer the new one FOLLOWS: MATLAB's ``addLayerAt(f, ...)`` (1-based
  ``f``, inserts after position ``f``) is ``add_layer_at(spec, f - 1, ...)``.
* Var order: ``addVar`` appends; a net rebuilt from a saved struct (``loadobj``)
  lists vars and params in order of first appearance in the layers (inputs, then
  outputs, then params, layer by layer), NOT in the saved order.
* ``rebuild`` drops vars no layer reads or writes and params no layer uses.
* Every function edits ``spec`` in place and returns it.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from matconv_port.errors import ModelFormatError
from matconv_port.netspec import LayerSpec, NetSpec, ParamSpec, VarSpec


def _where(spec: NetSpec) -> str:
    return spec.source or "network"


# ---------------------------------------------------------------------------- basics
def add_var(spec: NetSpec, name: str) -> NetSpec:
    """``DagNN.addVar``: append var ``name`` if the net has no var of that name."""
    if name not in {v.name for v in spec.vars}:
        spec.vars.append(VarSpec(name, False))
    return spec


def add_param(spec: NetSpec, name: str) -> NetSpec:
    """``DagNN.addParam``: append param ``name`` (empty value, learningRate 1,
    weightDecay 1) if absent."""
    if name not in spec.params:
        spec.params[name] = ParamSpec(name, None, 1.0, 1.0)
    return spec


def rebuild(spec: NetSpec) -> NetSpec:
    """``DagNN.rebuild``: drop vars no layer uses and params no layer uses (order kept;
    :meth:`NetSpec.rebuild_vars`)."""
    spec.rebuild_vars()
    return spec


def from_layers(layers: Iterable[LayerSpec], params: Iterable[ParamSpec] = (), meta: dict | None = None,
                vars_: Iterable[VarSpec] = (), source: str = "") -> NetSpec:
    """``dagnn.DagNN.loadobj`` of a struct with these layers (and optionally params,
    vars): vars and params are created in order of first appearance in the layers;
    values/learning rates of params and ``precious`` of vars are then copied by name."""
    spec = NetSpec(layers=[], params={}, vars=[], meta=dict(meta or {}), source=source)
    names: set[str] = set()
    for layer in layers:
        if layer.name in names:  # addLayer refuses it
            raise ModelFormatError(f"{source or 'network'}: there is already a layer with name {layer.name!r}")
        names.add(layer.name)
        spec.layers.append(layer)
        for n in list(layer.inputs) + list(layer.outputs):
            add_var(spec, n)
        for p in layer.params:
            add_param(spec, p)
    for p in params:
        if p.name in spec.params:
            spec.params[p.name] = ParamSpec(p.name, p.value, p.learning_rate, p.weight_decay)
    precious = {v.name: v.precious for v in vars_}
    for v in spec.vars:
        if v.name in precious:
            v.precious = precious[v.name]
    return spec


def reload(spec: NetSpec) -> NetSpec:
    """``loadobj(saveobj(net))``: the same net with vars and params re-created in
    first-appearance order (what MATLAB gets after a save/load round trip)."""
    out = from_layers(spec.layers, spec.params.values(), spec.meta, spec.vars, spec.source)
    out.source_format = spec.source_format
    return out


# ---------------------------------------------------------------------------- queries
def layer_index(spec: NetSpec, name: str) -> int:
    """0-based index of the layer called ``name``; ModelFormatError if none."""
    for i, layer in enumerate(spec.layers):
        if layer.name == name:
            return i
    raise ModelFormatError(f"{_where(spec)}: there is no layer {name!r}")


def find_layers(spec: NetSpec, substring: str) -> list[int]:
    """0-based indices of the layers whose name CONTAINS ``substring`` (MATLAB's
    ``find(~cellfun('isempty', strfind({net.layers.name}, s)))``)."""
    return [i for i, l in enumerate(spec.layers) if substring in l.name]


def layers_of_type(spec: NetSpec, mcn_type: str) -> list[int]:
    return [i for i, l in enumerate(spec.layers) if l.type == mcn_type]


# ---------------------------------------------------------------------------- renaming
def rename_var(spec: NetSpec, old: str, new: str) -> NetSpec:
    """``DagNN.renameVar``: replace ``old`` by ``new`` in every layer's inputs/outputs.
    If ``new`` is not already a var, the var keeps its position under the new name;
    otherwise the old slot becomes unused and is dropped."""
    names = [v.name for v in spec.vars]
    if old not in names:
        return spec  # MATLAB warns and does nothing
    new_exists = new in names
    for layer in spec.layers:
        layer.inputs = [new if n == old else n for n in layer.inputs]
        layer.outputs = [new if n == old else n for n in layer.outputs]
    if not new_exists:
        spec.vars[names.index(old)].name = new
    return rebuild(spec)


def rename_param(spec: NetSpec, old: str, new: str) -> NetSpec:
    """``DagNN.renameParam``: rename param ``old`` (in place, order kept) and every use of it."""
    if new in spec.params:
        raise ModelFormatError(f"{_where(spec)}: cannot rename param {old!r} to {new!r}: that name exists")
    if old not in spec.params:
        raise ModelFormatError(f"{_where(spec)}: there is no param {old!r}")
    for layer in spec.layers:
        layer.params = [new if p == old else p for p in layer.params]
    spec.params = {(new if k == old else k): (ParamSpec(new, p.value, p.learning_rate, p.weight_decay) if k == old else p)
                   for k, p in spec.params.items()}
    return rebuild(spec)


def rename_layer(spec: NetSpec, old: str, new: str) -> NetSpec:
    """Rename a layer (the fusion script edits ``layers(i).name`` of the saved struct)."""
    if any(l.name == new for l in spec.layers) and old != new:
        raise ModelFormatError(f"{_where(spec)}: cannot rename layer {old!r} to {new!r}: that name exists")
    spec.layers[layer_index(spec, old)].name = new
    return spec


# ---------------------------------------------------------------------------- adding / removing
def _new_layer(name: str, mcn_type: str, block: dict[str, Any], inputs, outputs, params) -> LayerSpec:
    as_list = lambda x: [x] if isinstance(x, str) else list(x or [])  # noqa: E731
    return LayerSpec(name, mcn_type, as_list(inputs), as_list(outputs), as_list(params), dict(block))


def add_layer(spec: NetSpec, name: str, mcn_type: str, block: dict[str, Any], inputs, outputs,
              params=()) -> NetSpec:
    """``DagNN.addLayer``: append a layer (its new vars, then new params, are appended)."""
    return add_layer_at(spec, len(spec.layers) - 1, name, mcn_type, block, inputs, outputs, params)


def add_layer_at(spec: NetSpec, after: int, name: str, mcn_type: str, block: dict[str, Any], inputs, outputs,
                 params=()) -> NetSpec:
    """The fork's ``DagNN.addLayerAt``: insert a layer right AFTER the layer at 0-based
    index ``after`` (``-1``: first); its new vars, then new params, are appended."""
    if any(l.name == name for l in spec.layers):
        raise ModelFormatError(f"{_where(spec)}: there is already a layer with name {name!r}")
    if not -1 <= after < len(spec.layers):
        raise ModelFormatError(f"{_where(spec)}: cannot insert layer {name!r} after position {after + 1}")
    layer = _new_layer(name, mcn_type, block, inputs, outputs, params)
    spec.layers.insert(after + 1, layer)
    for n in layer.inputs + layer.outputs:
        add_var(spec, n)
    for p in layer.params:
        add_param(spec, p)
    return rebuild(spec)


def remove_layer(spec: NetSpec, name: str, chain_inputs: bool = True) -> NetSpec:
    """``DagNN.removeLayer``: delete a layer; with ``chain_inputs`` the layers reading
    its outputs read its first input instead."""
    i = layer_index(spec, name)
    layer = spec.layers[i]
    if chain_inputs:
        for other in spec.layers:
            other.inputs = [layer.inputs[0] if n in layer.outputs else n for n in other.inputs]
    del spec.layers[i]
    return rebuild(spec)


def keep_layers(spec: NetSpec, count: int) -> NetSpec:
    """``net.layers = net.layers(1:count); net.rebuild``."""
    spec.layers = spec.layers[:count]
    return rebuild(spec)


def set_dropout(spec: NetSpec, rate: float) -> NetSpec:
    """Every DropOut layer's rate (``net.layers(i).block.rate = rate``, as the fusion
    and single-stream scripts set ``dropOutRatio``)."""
    for layer in spec.layers:
        if layer.type == "dagnn.DropOut":
            layer.block["rate"] = float(rate)
    return spec


# ---------------------------------------------------------------------------- losses
def is_error_layer(layer: LayerSpec) -> bool:
    """An error counter (``top1error``, ``err1_*``; a ``classerror`` / ``topkerror``
    Loss): its name or its loss contains ``err``, as the scripts' ``strfind(name, 'err')``."""
    return "err" in layer.name or (layer.type == "dagnn.Loss" and "err" in str(layer.block.get("loss", "")))


def objective_losses(layers: Iterable[LayerSpec]) -> list[LayerSpec]:
    """The Loss layers that are objectives (what ``derOutputs`` lists), not error counters."""
    return [l for l in layers if l.type == "dagnn.Loss" and not is_error_layer(l)]


# ---------------------------------------------------------------------------- learning rates
def matlab_squeeze(value: Any) -> Any:
    """MATLAB ``squeeze``: drop singleton dims of an N-D (N > 2) array, keeping >= 2 dims
    (a remaining vector becomes a column)."""
    if value is None or not hasattr(value, "ndim") or value.ndim <= 2:
        return value
    shape = [s for s in value.shape if s != 1]
    if len(shape) == 0:
        shape = [1, 1]
    elif len(shape) == 1:
        shape = [shape[0], 1]
    return np.asarray(value).reshape(shape, order="F")


def set_lr_wd(spec: NetSpec) -> NetSpec:
    """The fork's ``dagnn.DagNN.setLrWd`` (its options are ignored by its code):
    for every layer's params in slot order, BatchNorm: values squeezed,
    learningRate/weightDecay 2/0, 1/0, 0.05/0; any other layer: 1/1 for the first
    param (filters), 2/0 for the second (biases)."""
    for layer in spec.layers:
        for slot, pname in enumerate(layer.params):
            p = spec.params.get(pname)
            if p is None:
                continue
            if layer.type == "dagnn.BatchNorm":
                p.value = matlab_squeeze(p.value)
                lr_wd = {0: (2.0, 0.0), 1: (1.0, 0.0), 2: (0.05, 0.0)}.get(slot)
            else:
                lr_wd = {0: (1.0, 1.0), 1: (2.0, 0.0)}.get(slot)
            if lr_wd is not None:
                p.learning_rate, p.weight_decay = lr_wd
    return spec
