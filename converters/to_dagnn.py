"""NetSpec -> the struct ``dagnn.DagNN.saveobj`` writes (for ``write_mat``), the inverse
of :func:`~matconv_port.converters.dagnn.from_dagnn`.

``dagnn.DagNN.loadobj`` accepts it: ``vars`` (name, precious), ``params`` (name, value,
learningRate, weightDecay), ``layers`` (name, type, inputs, outputs, params, block) as
1xN struct arrays, ``meta`` as a struct. Block/meta values go back to MATLAB types:
float -> 1x1 double, list of numbers -> 1xN double row, bool -> logical, str -> char,
a list holding strings (e.g. ``opts``) -> 1xN cell, dict -> struct, ``[]`` -> ``{}``
for ``opts`` and ``[]`` (0x0 double) otherwise; ndarrays are kept as they are.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from matconv_port.netspec import NetSpec

from .mattypes import MatCell, MatStructArray


def matlab_value(value: Any, key: str = "") -> Any:
    """A plain block/meta value as the neutral MATLAB value saveobj would have saved."""
    if isinstance(value, bool) or isinstance(value, np.bool_):
        return np.array([[bool(value)]])
    if isinstance(value, (int, float, np.integer, np.floating)):
        return np.array([[float(value)]])
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return {str(k): matlab_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) == 0:
            return MatCell([]) if key == "opts" else np.zeros((0, 0))
        if all(isinstance(v, bool) for v in value):
            return np.array([list(value)], dtype=bool)
        if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in value):
            return np.array([[float(v) for v in value]])
        if all(isinstance(v, dict) for v in value):
            return MatStructArray([matlab_value(v) for v in value], shape=(1, len(value)))
        return MatCell([matlab_value(v) for v in value])
    if value is None:
        return np.zeros((0, 0))
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return value


def _names(names: list[str]) -> MatCell:
    return MatCell(list(names)) if names else MatCell([], shape=(1, 0))


def netspec_to_dagnn_struct(spec: NetSpec) -> dict:
    """The saveobj struct of ``spec`` (params' values as stored, in MatConvNet layout)."""
    var_names = spec.all_var_names()
    precious = {v.name: v.precious for v in spec.vars}
    vars_ = MatStructArray([{"name": n, "precious": np.array([[bool(precious.get(n, False))]])}
                            for n in var_names], shape=(1, len(var_names)), fields=["name", "precious"])
    params = MatStructArray(
        [{"name": p.name, "value": matlab_value(p.value), "learningRate": np.array([[float(p.learning_rate)]]),
          "weightDecay": np.array([[float(p.weight_decay)]])} for p in spec.params.values()],
        shape=(1, len(spec.params)), fields=["name", "value", "learningRate", "weightDecay"])
    layers = MatStructArray(
        [{"name": l.name, "type": l.type, "inputs": _names(l.inputs), "outputs": _names(l.outputs),
          "params": _names(l.params), "block": {k: matlab_value(v, k) for k, v in l.block.items()}}
         for l in spec.layers],
        shape=(1, len(spec.layers)), fields=["name", "type", "inputs", "outputs", "params", "block"])
    return {"vars": vars_, "params": params, "layers": layers, "meta": matlab_value(dict(spec.meta))}
