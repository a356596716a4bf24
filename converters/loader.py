"""``load_netspec``: any MatConvNet model file -> :class:`NetSpec`.

Where the net is looked for, in order:

1. a variable ``net`` (a bare saved net, or a ``cnn_train``/``cnn_train_dag`` checkpoint
   ``net-epoch-N.mat`` holding ``net`` next to ``stats``, ``state``, ``opts``, ``info``);
2. the file itself, saved with ``save -struct``: top-level ``layers`` (plus ``meta``,
   ``vars``, ``params``, ``normalization``, ``classes``, ``imageMean``...);
3. a struct variable holding a ``net`` field, or holding ``layers`` itself.

A DagNN (``layers`` a struct array with ``type``/``block``) goes through
:func:`~matconv_port.converters.dagnn.from_dagnn`; a SimpleNN (``layers`` a cell of
structs) through :func:`~matconv_port.converters.simplenn.from_simplenn`. A top-level
``imageMean`` next to a ``-struct`` SimpleNN (old practical-cnn files) is kept as
``meta["imageMean"]`` (not part of MatConvNet's tidy; the nets expect it subtracted).
"""
from __future__ import annotations

import os
from typing import Any

from matconv_port.errors import ModelFormatError
from matconv_port.netspec import NetSpec

from .dagnn import from_dagnn, is_dagnn_struct
from .matfile import read_mat
from .mattypes import MatCell, MatStructArray


def _looks_like_net(value: Any) -> bool:
    return isinstance(value, dict) and "layers" in value and isinstance(
        value["layers"], (MatCell, MatStructArray, dict))


def find_net(variables: dict[str, Any], source: str = "") -> tuple[dict, str]:
    """The net struct in a file's variables and where it was found (``"net"``,
    ``"<file>"`` for ``-struct`` files, ``"<var>.net"``, ``"<var>"``)."""
    if _looks_like_net(variables.get("net")):
        return variables["net"], "net"
    if _looks_like_net(variables):
        return variables, "<file>"
    for name, value in variables.items():
        if isinstance(value, dict) and _looks_like_net(value.get("net")):
            return value["net"], f"{name}.net"
    for name, value in variables.items():
        if _looks_like_net(value):
            return value, name
    names = ", ".join(variables) if variables else "none"
    if "net" in variables:
        raise ModelFormatError(f"{source}: variable 'net' is not a MatConvNet network "
                               f"(no 'layers' field; top-level variables: {names})")
    raise ModelFormatError(f"{source}: no MatConvNet network found (top-level variables: {names})")


def netspec_from_variables(variables: dict[str, Any], source: str = "",
                           outputs: list[str] | None = None) -> NetSpec:
    """Like :func:`load_netspec` for variables already read with ``read_mat``."""
    from .simplenn import from_simplenn

    net, where = find_net(variables, source)
    if is_dagnn_struct(net):
        spec = from_dagnn(net, source)
    else:
        layers = net["layers"]
        if isinstance(layers, MatStructArray) or isinstance(layers, dict):
            missing = "type" if (isinstance(layers, dict) and "type" not in layers) or (
                isinstance(layers, MatStructArray) and "type" not in layers.fields) else "block"
            raise ModelFormatError(f"{source}: net.layers is a struct array without '{missing}' "
                                   f"(neither a DagNN nor a SimpleNN net)")
        extra = {}
        if where == "<file>" and "imageMean" in variables:
            extra["imageMean"] = variables["imageMean"]
        spec = from_simplenn(net, source, extra_meta=extra)
    if outputs:
        spec = prune_to_outputs(spec, outputs)
    return spec


def load_netspec(path: str, *, outputs: list[str] | None = None, map_min_bytes: int | None = None) -> NetSpec:
    """Read a MatConvNet model file (SimpleNN or DagNN, MAT v5/v6/v7/v7.3) as a NetSpec.

    ``outputs``: keep only the layers needed to compute these vars. Raises
    ``MatFileError`` (unreadable file) or ``ModelFormatError`` (no net, malformed net),
    each one line naming the file and the layer/field at fault. ``map_min_bytes``:
    big arrays of v7.3 files may be read-only memory maps (see ``read_mat73``).
    """
    path = os.fspath(path)
    return netspec_from_variables(read_mat(path, map_min_bytes=map_min_bytes), path, outputs=outputs)


def prune_to_outputs(spec: NetSpec, outputs: list[str]) -> NetSpec:
    """Keep the layers needed to compute ``outputs`` (walking back from them), in the
    original order; vars/params no kept layer uses are dropped (order kept)."""
    available = spec.all_var_names()
    unknown = [o for o in outputs if o not in available]
    if unknown:
        raise ModelFormatError(f"{spec.source}: unknown output var(s) {', '.join(unknown)} "
                               f"(available vars: {', '.join(available)})")
    producers: dict[str, list[int]] = {}
    for i, layer in enumerate(spec.layers):
        for o in layer.outputs:
            producers.setdefault(o, []).append(i)
    needed_vars = set(outputs)
    keep: set[int] = set()
    stack = list(outputs)
    while stack:
        var = stack.pop()
        for i in producers.get(var, []):
            if i in keep:
                continue
            keep.add(i)
            for v in spec.layers[i].inputs:
                if v not in needed_vars:
                    needed_vars.add(v)
                    stack.append(v)
    out = spec.copy()
    out.layers = [layer for i, layer in enumerate(out.layers) if i in keep]
    used = {v for layer in out.layers for v in layer.inputs + layer.outputs} | set(outputs)
    out.vars = [v for v in out.vars if v.name in used]
    used_params = {p for layer in out.layers for p in layer.params}
    out.params = {k: v for k, v in out.params.items() if k in used_params}
    return out
