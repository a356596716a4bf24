"""The neutral description of a MatConvNet network (a DagNN, in DagNN's terms).

Every model, whatever its source (SimpleNN or DagNN, MAT v5/v7/v7.3, a converted
``.pt`` file, a net built by the fusion surgery), becomes a :class:`NetSpec`:

* ``layers``: in the file's order (DagNN ``net.layers``), each with its MatConvNet
  ``type`` (``dagnn.Conv``...; SimpleNN types are mapped as ``dagnn.DagNN.fromSimpleNN``
  does), var names ``inputs``/``outputs``, param names ``params`` and ``block``: the
  block's properties as plain Python values (numbers as lists of floats or floats,
  strings, booleans, nested dicts/lists).
* ``params``: name -> :class:`ParamSpec`, values in MatConvNet's layout (MATLAB index
  order, e.g. a conv filter ``H x W x Cin x Cout``; biases as saved, ``1 x C`` or
  ``C x 1``). A param used by several layers appears once (shared).
* ``vars``: every variable name in the file's order, with ``precious``.
* ``meta``: ``net.meta`` as plain Python values (``normalization.averageImage``
  as a numpy array, ``classes.name``/``classes.description`` as lists of str, ...).

SimpleNN nets keep fromSimpleNN's names: vars ``x0`` ... ``xL`` (``x0`` = input),
loss labels ``label``, ``label2``...; params ``<layer>f``, ``<layer>b`` (conv),
``<layer>m``, ``<layer>b``, ``<layer>x`` (bnorm); unnamed layers ``layer<i>``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ParamSpec:
    name: str
    value: Any  # np.ndarray or torch.Tensor in MatConvNet layout (MATLAB index order)
    learning_rate: float = 1.0
    weight_decay: float = 1.0


@dataclass
class LayerSpec:
    name: str
    type: str
    inputs: list[str]
    outputs: list[str]
    params: list[str] = field(default_factory=list)
    block: dict[str, Any] = field(default_factory=dict)


@dataclass
class VarSpec:
    name: str
    precious: bool = False


@dataclass
class NetSpec:
    layers: list[LayerSpec] = field(default_factory=list)
    params: dict[str, ParamSpec] = field(default_factory=dict)
    vars: list[VarSpec] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    #: "simplenn" or "dagnn": the format the net came from (SimpleNN keeps x0..xL names)
    source_format: str = "dagnn"
    #: where it came from (a path), for error messages
    source: str = ""
    #: the MatConvNet semantics stored in a converted file ("fork"/"stock"), None for a
    #: MatConvNet file (:mod:`matconv_port.semantics`), and the evidence it was chosen on
    semantics: str | None = None
    semantics_evidence: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ queries
    def layer(self, name: str) -> LayerSpec:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def layer_index(self, name: str) -> int:
        for i, layer in enumerate(self.layers):
            if layer.name == name:
                return i
        raise KeyError(name)

    def var_names(self) -> list[str]:
        return [v.name for v in self.vars]

    def input_vars(self) -> list[str]:
        """Vars that no layer writes (network inputs: images, flow, labels), in var order."""
        produced = {o for layer in self.layers for o in layer.outputs}
        used = [i for layer in self.layers for i in layer.inputs]
        names = [v.name for v in self.vars if v.name not in produced and v.name in set(used)]
        for name in used:  # vars missing from the var list (hand-made specs)
            if name not in produced and name not in names:
                names.append(name)
        return names

    def output_vars(self) -> list[str]:
        """Vars that no layer reads (net outputs: losses, predictions), in var order."""
        consumed = {i for layer in self.layers for i in layer.inputs}
        return [v for v in self.all_var_names() if v not in consumed]

    def all_var_names(self) -> list[str]:
        names = [v.name for v in self.vars]
        seen = set(names)
        for layer in self.layers:
            for n in list(layer.inputs) + list(layer.outputs):
                if n not in seen:
                    seen.add(n)
                    names.append(n)
        return names

    def rebuild_vars(self) -> None:
        """Recompute ``vars`` from the layers, keeping existing order/precious flags and
        dropping vars no layer uses (as ``DagNN.rebuild`` does); also drops unused params."""
        old = {v.name: v for v in self.vars}
        used = []
        for layer in self.layers:
            for n in list(layer.inputs) + list(layer.outputs):
                if n not in used:
                    used.append(n)
        order = [v.name for v in self.vars if v.name in set(used)]
        order += [n for n in used if n not in set(order)]
        self.vars = [old.get(n, VarSpec(n)) for n in order]
        used_params = {p for layer in self.layers for p in layer.params}
        self.params = {k: v for k, v in self.params.items() if k in used_params}

    def execution_order(self) -> list[int]:
        """0-based layer indices in DagNN's execution order (``DagNN.rebuild``'s getOrder:
        a depth-first topological sort seeded in layer order, then sorted by depth)."""
        return dag_execution_order(self)

    def copy(self) -> "NetSpec":
        """Deep copy of the structure; param values are shared, not copied."""
        params = {k: ParamSpec(p.name, p.value, p.learning_rate, p.weight_decay) for k, p in self.params.items()}
        return NetSpec(
            layers=[LayerSpec(l.name, l.type, list(l.inputs), list(l.outputs), list(l.params), copy.deepcopy(l.block))
                    for l in self.layers],
            params=params,
            vars=[VarSpec(v.name, v.precious) for v in self.vars],
            meta=copy.deepcopy(self.meta),
            source_format=self.source_format,
            source=self.source,
            semantics=self.semantics,
            semantics_evidence=list(self.semantics_evidence),
        )


def dag_execution_order(spec: NetSpec) -> list[int]:
    """Exactly MatConvNet's ``getOrder``/``dagSort`` (rebuild.m), 0-based."""
    n = len(spec.layers)
    var_index: dict[str, int] = {}
    for name in spec.all_var_names():
        var_index.setdefault(name, len(var_index))
    hops: dict[int, list[int]] = {}
    for li, layer in enumerate(spec.layers):
        for v in layer.inputs:
            hops.setdefault(var_index[v], []).append(li)
    order = [0] * n

    def dag_sort(layer: int) -> None:
        # iterative version of MatConvNet's recursive dagSort
        stack = [(layer, 0, 0, 0)]  # (layer, output idx, child idx, running max)
        order[layer] = -1
        while stack:
            li, oi, ci, best = stack.pop()
            outs = [var_index[o] for o in spec.layers[li].outputs]
            done = False
            aborted = False
            while oi < len(outs):
                children = hops.get(outs[oi], [])
                if ci < len(children):
                    child = children[ci]
                    if order[child] == -1:
                        aborted = True  # cycle: leave this layer open (-1), as MatConvNet
                        break
                    if order[child] == 0:
                        stack.append((li, oi, ci, best))
                        order[child] = -1
                        stack.append((child, 0, 0, 0))
                        done = True
                        break
                    best = max(best, order[child])
                    ci += 1
                else:
                    oi += 1
                    ci = 0
            if done:
                continue
            if not aborted:
                order[li] = best + 1
            # the parent (if any) is next on the stack and re-reads this child's order
    for li in range(n):
        if order[li] == 0:
            dag_sort(li)
    # sort by order descending, stable (MATLAB sort is stable)
    return sorted(range(n), key=lambda i: -order[i])


def unique_name(base: str, used: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``... whichever is not in ``used``; it is added to ``used``."""
    key, i = base, 1
    while key in used:
        i += 1
        key = f"{base}_{i}"
    used.add(key)
    return key


def as_float_list(value: Any) -> list[float]:
    """A MATLAB numeric (scalar or array, any shape) as a flat list of floats, column-major."""
    arr = np.asarray(value, dtype=np.float64)
    return [float(x) for x in arr.flatten(order="F")]
