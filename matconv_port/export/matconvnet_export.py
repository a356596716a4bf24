"""A :class:`~matconv_port.netspec.NetSpec` (or a model) -> the struct
``dagnn.DagNN.saveobj`` writes, saved as ``net`` in a MAT file.

The struct (neutral values of :mod:`matconv_port.converters.mattypes`) has exactly
the layout of MatConvNet's own saves (the DagNN files in ``fixtures/reference``):

* ``vars``: 1 x V struct array, fields ``name`` (char), ``precious`` (logical);
* ``params``: 1 x P struct array, fields ``name``, ``value`` (single, MatConvNet
  layout: conv filters ``H x W x Cin x Cout``, Conv3D ``H x W x T x Cin x Cout``,
  biases as they were saved), ``learningRate``, ``weightDecay`` (double scalars);
* ``layers``: 1 x L struct array, fields ``name``, ``type`` (``dagnn.Conv``...),
  ``inputs``/``outputs``/``params`` (1 x N cell rows of char; ``{}`` 0 x 0 when
  empty), ``block``: the block's saved properties in MATLAB's order (the class's own
  properties in declaration order, then its superclass's: Conv = size, hasBias, opts,
  pad, stride), numbers as double rows, flags as logical, ``opts`` as cells;
* ``meta``: ``net.meta`` (normalization, classes, ...), unchanged.

Blocks follow the classes of the net's semantics (:mod:`matconv_port.semantics`, the
model's choice; for a bare NetSpec the file's evidence): the paper's fork
(:data:`BLOCK_SCHEMAS`) or stock v1.0-beta25 (:data:`STOCK_BLOCK_SCHEMAS`: Conv/Pooling
``dilate``, BatchNorm ``opts``, Loss ``ignoreAverage``), so that reading the file back
detects the same semantics and keeps every dilation. A fork net with a dilation other
than 1 is refused (the fork's classes have no ``dilate``).

A SimpleNN-sourced net is written as the DagNN ``dagnn.DagNN.fromSimpleNN`` builds
from it (vars ``x0..xL``, params ``<layer>f``/``<layer>b``..., ``opts = {}`` as
``vl_simplenn_tidy`` fills it, BatchNorm with the default ``epsilon``).
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from matconv_port.errors import MatConvPortError
from matconv_port.netspec import LayerSpec, NetSpec

__all__ = ["export_matconvnet", "netspec_to_dagnn_struct", "export_semantics", "BLOCK_SCHEMAS", "STOCK_BLOCK_SCHEMAS"]

# property kinds
DOUBLE, LOGICAL, CHAR, CELL = "double", "logical", "char", "cell"

_EMPTY = object()  # default: a 0 x 0 double ([])

#: MatConvNet block classes (this fork, plus ConvTranspose/Sigmoid of later versions):
#: the saved properties in MATLAB's order as (name, kind, default). Defaults are the
#: class's own; ``None`` = computed from the layer (``size`` from the filter's shape,
#: ``hasBias`` from the number of params).
BLOCK_SCHEMAS: dict[str, list[tuple[str, str, Any]]] = {
    "dagnn.Conv": [("size", DOUBLE, None), ("hasBias", LOGICAL, None), ("opts", CELL, ["cuDNN"]),
                   ("pad", DOUBLE, [0, 0, 0, 0]), ("stride", DOUBLE, [1, 1])],
    "dagnn.Conv3D": [("size", DOUBLE, None), ("hasBias", LOGICAL, None), ("opts", CELL, ["cuDNN"]),
                     ("pad", DOUBLE, [0, 0, 0, 0]), ("stride", DOUBLE, [1, 1])],
    "dagnn.ConvTranspose": [("size", DOUBLE, None), ("hasBias", LOGICAL, None), ("upsample", DOUBLE, [1, 1]),
                            ("crop", DOUBLE, [0, 0, 0, 0]), ("numGroups", DOUBLE, 1), ("opts", CELL, ["cuDNN"])],
    "dagnn.Pooling": [("method", CHAR, "max"), ("poolSize", DOUBLE, [1, 2]), ("opts", CELL, ["cuDNN"]),
                      ("pad", DOUBLE, [0, 0, 0, 0]), ("stride", DOUBLE, [1, 1])],
    "dagnn.Pooling3D": [("method", CHAR, "max"), ("poolSize", DOUBLE, [1, 1, 1]),
                        ("pad", DOUBLE, [0, 0, 0, 0]), ("stride", DOUBLE, [1, 1])],
    "dagnn.ReLU": [("useShortCircuit", LOGICAL, True), ("leak", DOUBLE, 0), ("opts", CELL, [])],
    "dagnn.LRN": [("param", DOUBLE, [5, 1, 0.0001 / 5, 0.75])],
    "dagnn.BatchNorm": [("numChannels", DOUBLE, _EMPTY), ("epsilon", DOUBLE, 1e-4)],
    "dagnn.DropOut": [("rate", DOUBLE, 0.5), ("frozen", LOGICAL, False)],
    "dagnn.Loss": [("loss", CHAR, "softmaxlog"), ("opts", CELL, [])],
    "dagnn.SoftMax": [],
    "dagnn.Sigmoid": [],
    "dagnn.Concat": [("dim", DOUBLE, 3)],
    "dagnn.Sum": [],
    "dagnn.Scale": [("size", DOUBLE, _EMPTY), ("hasBias", LOGICAL, True)],
    # stock MatConvNet 1.0-beta25 types (matlab/+dagnn/*.m of v1.0-beta25)
    "dagnn.Crop": [("crop", DOUBLE, [0, 0])],
    "dagnn.ROIPooling": [("method", CHAR, "max"), ("subdivisions", DOUBLE, [6, 6]), ("transform", DOUBLE, 1),
                         ("flatten", LOGICAL, False)],
    "dagnn.BilinearSampler": [],
    "dagnn.AffineGridGenerator": [("Ho", DOUBLE, 0), ("Wo", DOUBLE, 0)],
    "dagnn.UniformScalingGridGenerator": [("Ho", DOUBLE, 0), ("Wo", DOUBLE, 0)],
    "dagnn.NormOffset": [("param", DOUBLE, [1, 0.5])],
    "dagnn.SpatialNorm": [("param", DOUBLE, [2, 2, 10, 2])],
    # PDist < dagnn.Loss (stock's Loss: loss, ignoreAverage, opts)
    "dagnn.PDist": [("p", DOUBLE, 2), ("aggregate", LOGICAL, True), ("loss", CHAR, "pdist"),
                    ("ignoreAverage", LOGICAL, False), ("opts", CELL, [])],
}

#: stock MatConvNet v1.0-beta25's classes where they differ from the fork's
#: (``matlab/+dagnn/{Conv,Pooling,BatchNorm,Loss,Filter}.m`` of ``v1.0-beta25``): ``dagnn.Filter``
#: adds ``dilate`` after ``pad``/``stride``; Pooling's ``poolSize`` defaults to ``[1 1]``; BatchNorm
#: has epsilon 1e-5 and ``opts``; Loss has ``ignoreAverage``. A net with stock semantics is
#: written with these, so that reading it back detects stock again and keeps its dilation.
STOCK_BLOCK_SCHEMAS: dict[str, list[tuple[str, str, Any]]] = {
    "dagnn.Conv": BLOCK_SCHEMAS["dagnn.Conv"] + [("dilate", DOUBLE, [1, 1])],
    "dagnn.Pooling": [("method", CHAR, "max"), ("poolSize", DOUBLE, [1, 1]), ("opts", CELL, ["cuDNN"]),
                      ("pad", DOUBLE, [0, 0, 0, 0]), ("stride", DOUBLE, [1, 1]), ("dilate", DOUBLE, [1, 1])],
    "dagnn.BatchNorm": [("numChannels", DOUBLE, _EMPTY), ("epsilon", DOUBLE, 1e-5), ("opts", CELL, ["NoCuDNN"])],
    "dagnn.Loss": [("loss", CHAR, "softmaxlog"), ("ignoreAverage", LOGICAL, False), ("opts", CELL, [])],
}
#: properties of later stock versions kept when a block has them (``normalise``: the
#: post-beta25 ``dagnn.Loss``, whose outputs are divided by the batch size)
_STOCK_KEPT_EXTRA = {"dagnn.Loss": (("normalise", LOGICAL),)}
#: filter types whose ``dilate`` the fork's classes cannot hold
_DILATED_TYPES = ("dagnn.Conv", "dagnn.Pooling", "dagnn.ConvTranspose")

#: other names a NetSpec block may use for a property (SimpleNN field names)
_ALIASES = {"poolSize": ("pool",)}

#: what ``dagnn.DagNN.fromSimpleNN`` leaves at other values than the class defaults
#: (``vl_simplenn_tidy`` fills conv/pool ``opts = {}``, ``pad = 0``, ``stride = 1``)
_SIMPLENN_DEFAULTS = {
    "dagnn.Conv": {"opts": [], "pad": 0, "stride": 1},
    "dagnn.ConvTranspose": {"opts": [], "upsample": 1, "crop": 0},
    "dagnn.Pooling": {"opts": [], "pad": 0, "stride": 1},
}
#: block properties fromSimpleNN never copies from the SimpleNN layer (class defaults kept)
_SIMPLENN_IGNORED = {"dagnn.BatchNorm": ("epsilon", "numChannels")}
#: stock: fromSimpleNN copies conv ``dilate`` (tidy default 1); BatchNorm gets the class
#: defaults, but stock ``vl_simplenn`` runs a ``bnorm`` with the layer's own epsilon, so
#: that epsilon (``simplennEpsilon`` in the NetSpec) is written to keep the computation
_STOCK_SIMPLENN_DEFAULTS = {"dagnn.Conv": {"dilate": 1}}
_STOCK_SIMPLENN_IGNORED = {"dagnn.BatchNorm": ("numChannels",)}


# ----------------------------------------------------------------------------- value helpers
def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return False
    if isinstance(value, np.ndarray):
        return value.size == 0
    if isinstance(value, (list, tuple)):
        return len(value) == 0
    return False


def _double(value: Any) -> np.ndarray:
    """A MATLAB double array: scalars 1x1, lists 1xN rows, arrays keep their shape (>= 2-D)."""
    if value is _EMPTY or value is None:
        return np.zeros((0, 0))
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        arr = value.astype(np.float64)
        if arr.size == 0:
            return np.zeros((0, 0)) if arr.ndim < 2 else arr
        if arr.ndim == 0:
            return arr.reshape(1, 1)
        return arr.reshape(1, -1) if arr.ndim == 1 else arr
    if isinstance(value, (list, tuple)):
        if not value:
            return np.zeros((0, 0))
        return np.asarray([float(np.asarray(v, dtype=np.float64).ravel()[0]) if np.size(v) == 1 else np.nan
                           for v in value], dtype=np.float64).reshape(1, -1)
    return np.array([[float(value)]])


def _logical(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return np.asarray(value.ravel()[:1] if value.size else [False], dtype=bool).reshape(1, 1)
    if isinstance(value, (list, tuple)):
        value = value[0] if value else False
    return np.array([[bool(value)]])


def _char(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    if isinstance(value, np.ndarray) and value.size == 0:
        return ""
    return str(value)


def _cell(value: Any):
    from matconv_port.converters.mattypes import MatCell

    if isinstance(value, MatCell):
        return MatCell([matlab_value(v) for v in value], shape=value.shape)
    if _is_empty(value):
        return MatCell([], shape=(0, 0))
    if isinstance(value, (str, int, float, bool, dict)) or isinstance(value, np.ndarray):
        return MatCell([matlab_value(value)], shape=(1, 1))
    items = list(value)
    return MatCell([matlab_value(v) for v in items], shape=(1, len(items)))


def matlab_value(value: Any) -> Any:
    """Best-effort plain Python value -> neutral MATLAB value (for meta and the blocks of
    types without a schema): bool -> logical, numbers and lists of numbers -> double
    (1 x N rows), str -> char, lists of str -> cell rows, dict -> struct, None -> []."""
    from matconv_port.converters.mattypes import MatCell, MatOpaque, MatStructArray

    if value is None:
        return np.zeros((0, 0))
    if isinstance(value, MatStructArray):
        return MatStructArray([{k: matlab_value(v) for k, v in item.items()} for item in value],
                              shape=value.shape, fields=value.fields)
    if isinstance(value, MatCell):
        return MatCell([matlab_value(v) for v in value], shape=value.shape)
    if isinstance(value, MatOpaque):
        return np.zeros((0, 0))
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return MatCell([matlab_value(v) for v in value.ravel(order="F")],
                           shape=value.shape if value.ndim >= 2 else (1, value.size))
        if value.dtype.kind in "US":
            items = [str(v) for v in value.ravel(order="F")]
            return MatCell(items, shape=value.shape if value.ndim >= 2 else (1, len(items)))
        if value.ndim < 2:
            return value.reshape(1, -1) if value.size else np.zeros((0, 0), dtype=value.dtype)
        return value
    if isinstance(value, (bool, np.bool_)):
        return np.array([[bool(value)]])
    if isinstance(value, (int, float, np.integer, np.floating)):
        return np.array([[float(value)]]) if not isinstance(value, (np.integer, np.floating)) \
            else np.array([[value]])
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return {str(k): matlab_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = list(value)
        if not items:
            return np.zeros((0, 0))
        if all(isinstance(v, (bool, np.bool_)) for v in items):
            return np.array([bool(v) for v in items]).reshape(1, -1)
        if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
               for v in items):
            return np.asarray(items, dtype=np.float64).reshape(1, -1)
        if all(isinstance(v, dict) for v in items) and len({tuple(v) for v in items}) == 1:
            return MatStructArray([matlab_value(v) for v in items], shape=(1, len(items)), fields=list(items[0]))
        return MatCell([matlab_value(v) for v in items], shape=(1, len(items)))
    return str(value)


_CONVERT: dict[str, Callable[[Any], Any]] = {DOUBLE: _double, LOGICAL: _logical, CHAR: _char, CELL: _cell}


# ----------------------------------------------------------------------------- blocks
def _check_dilation(layer: LayerSpec, source: str) -> None:
    """The fork's Conv/Pooling have no ``dilate``: refuse to drop one that is not 1."""
    if layer.type not in _DILATED_TYPES or (layer.block or {}).get("dilate") is None:
        return
    vals = _double(layer.block["dilate"]).ravel()
    if vals.size and not np.all(vals == 1):
        raise MatConvPortError(
            f"{source or 'network'}: layer {layer.name!r} ({layer.type}) has dilate {vals.tolist()}, which the "
            f"paper's fork (the net's semantics) cannot hold; convert with --semantics stock and export again")


def block_struct(layer: LayerSpec, param_shapes: dict[str, tuple], simplenn: bool = False,
                 semantics: str = "fork") -> dict[str, Any]:
    """The ``block`` struct ``Layer.save`` writes for ``layer`` (MATLAB field order and types),
    with the classes of ``semantics``: ``"fork"`` (the paper's fork) or ``"stock"`` (v1.0-beta25)."""
    stock = semantics == "stock"
    schema = (STOCK_BLOCK_SCHEMAS.get(layer.type) if stock else None) or BLOCK_SCHEMAS.get(layer.type)
    block = dict(layer.block or {})
    if schema is None:  # a custom type: its properties as they are, best-effort types
        return {str(k): matlab_value(v) for k, v in block.items()}
    if stock and simplenn and layer.type == "dagnn.BatchNorm" and block.get("simplennEpsilon") is not None:
        block["epsilon"] = block["simplennEpsilon"]
    overrides = ((_STOCK_SIMPLENN_DEFAULTS if stock else {}).get(layer.type, {}) | _SIMPLENN_DEFAULTS.get(layer.type, {})
                 if simplenn else {})
    ignored = (_STOCK_SIMPLENN_IGNORED if stock else _SIMPLENN_IGNORED).get(layer.type, ()) if simplenn else ()
    out: dict[str, Any] = {}
    for name, kind, default in schema:
        value = None if name in ignored else block.get(name)
        if value is None and name not in ignored:
            for alias in _ALIASES.get(name, ()):
                if block.get(alias) is not None:
                    value = block[alias]
                    break
        present = value is not None and not (kind == DOUBLE and _is_empty(value) and default is not _EMPTY)
        if not present:
            value = overrides.get(name, default)
            if value is None:  # computed defaults
                if name == "size":
                    shape = param_shapes.get(layer.params[0]) if layer.params else None
                    value = list(shape) if shape is not None else _EMPTY
                elif name == "hasBias":
                    value = len(layer.params) > 1
        if kind == CELL and present and isinstance(value, (list, tuple)) and not value:
            value = []
        out[name] = _CONVERT[kind](value)
    for name, kind in _STOCK_KEPT_EXTRA.get(layer.type, ()) if stock else ():
        if block.get(name) is not None:
            out[name] = _CONVERT[kind](block[name])
    if layer.type == "dagnn.ROIPooling" and out["transform"].size == 6:  # a 2x3 affine, kept column-major
        out["transform"] = out["transform"].reshape(2, 3, order="F")
    if layer.type in ("dagnn.Pooling", "dagnn.Pooling3D"):
        out["method"] = out["method"].lower() if out["method"] else "max"
    return out


# ----------------------------------------------------------------------------- the net struct
def _cell_row(names: list[str]):
    from matconv_port.converters.mattypes import MatCell

    names = [str(n) for n in names]
    return MatCell(names, shape=(1, len(names)) if names else (0, 0))


def _param_value(value: Any, name: str, source: str) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if value is None:
        raise MatConvPortError(f"{source or 'network'}: param {name!r} has no value")
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32, copy=False)
    if arr.ndim < 2:
        arr = arr.reshape(1, -1) if arr.size else np.zeros((0, 0), dtype=arr.dtype)
    return arr


def netspec_to_dagnn_struct(spec: NetSpec) -> dict[str, Any]:
    """The ``net`` struct (neutral values) that ``dagnn.DagNN.saveobj`` writes for ``spec``.

    Param values must be in MatConvNet layout (``model.to_netspec()`` gives that); floats
    are written as single. Vars and params keep the spec's order; params no layer uses
    are dropped and vars no layer uses too (as ``DagNN.rebuild`` would)."""
    from matconv_port.converters.mattypes import MatStructArray

    simplenn = spec.source_format == "simplenn"
    semantics = export_semantics(spec)
    if semantics == "fork":
        for layer in spec.layers:
            _check_dilation(layer, spec.source)
    used_params: list[str] = []
    for layer in spec.layers:
        for p in layer.params:
            if p not in used_params:
                used_params.append(p)
    missing = [p for p in used_params if p not in spec.params]
    if missing:
        raise MatConvPortError(f"{spec.source or 'network'}: params {missing[:5]} have no value")
    order = [p for p in spec.params if p in set(used_params)]
    order += [p for p in used_params if p not in set(order)]
    shapes = {p: tuple(np.shape(spec.params[p].value)) for p in order}

    var_order = spec.all_var_names()
    used_vars = {v for l in spec.layers for v in list(l.inputs) + list(l.outputs)}
    precious = {v.name: bool(v.precious) for v in spec.vars}
    vars_ = MatStructArray(
        [{"name": v, "precious": np.array([[precious.get(v, False)]])} for v in var_order if v in used_vars],
        fields=["name", "precious"])
    vars_.shape = (1, len(vars_)) if len(vars_) else (0, 0)
    params = MatStructArray(
        [{"name": p,
          "value": _param_value(spec.params[p].value, p, spec.source),
          "learningRate": np.array([[float(spec.params[p].learning_rate)]]),
          "weightDecay": np.array([[float(spec.params[p].weight_decay)]])} for p in order],
        fields=["name", "value", "learningRate", "weightDecay"])
    params.shape = (1, len(params)) if len(params) else (0, 0)
    layers = MatStructArray(
        [{"name": l.name, "type": l.type, "inputs": _cell_row(l.inputs), "outputs": _cell_row(l.outputs),
          "params": _cell_row(l.params), "block": block_struct(l, shapes, simplenn, semantics)}
         for l in spec.layers],
        fields=["name", "type", "inputs", "outputs", "params", "block"])
    layers.shape = (1, len(layers)) if len(layers) else (0, 0)
    meta = matlab_value(dict(spec.meta or {}))
    return {"vars": vars_, "params": params, "layers": layers, "meta": meta}


def export_semantics(spec: NetSpec) -> str:
    """Whose classes the blocks are written with: the semantics stored in ``spec`` (a
    model's ``to_netspec()`` carries the model's), else the file's evidence
    (:func:`matconv_port.semantics.resolve_semantics` with ``auto``)."""
    from matconv_port.semantics import resolve_semantics

    if spec.semantics in ("fork", "stock"):
        return spec.semantics
    return resolve_semantics("auto", spec).name


def export_matconvnet(model, path: str, version: str = "auto") -> None:
    """Write ``model`` (a :class:`~matconv_port.network.MatConvNetModel` or a
    :class:`~matconv_port.netspec.NetSpec` with MatConvNet-layout values) to ``path`` as
    the MAT variable ``net`` holding the struct ``dagnn.DagNN.saveobj`` writes; load it
    in MatConvNet with ``s = load(path); net = dagnn.DagNN.loadobj(s.net)``.

    ``version``: ``"auto"`` (-v7, or -v7.3 past 2 GB), ``"7"`` or ``"7.3"``. The write is
    atomic (temp file in the same folder, then rename)."""
    from matconv_port.converters.matfile import write_mat

    if version not in ("auto", "7", "7.3"):
        raise MatConvPortError(f"MAT version must be auto, 7 or 7.3, not {version!r}")
    spec = model if isinstance(model, NetSpec) else model.to_netspec()
    net = netspec_to_dagnn_struct(spec)
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise MatConvPortError(f"{path}: folder {folder} does not exist")
    write_mat(os.fspath(path), {"net": net}, version=version)
