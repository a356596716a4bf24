"""The network construction of ``cnn_ucf101_fusion.m``: two single-stream nets -> the
fused two-stream net, step by step as the script does it (same layer order, names,
var and param order, block properties, initial values, learning rates).

Tower A is the RGB ("spatial") net, tower B the flow ("temporal") net. The steps:

1. In each tower, the layer before the first ``dagnn.Loss`` is renamed ``prediction``.
2. ``meta.normalization.averageImage`` of each is averaged over H and W
   (:func:`~matconv_port.data.average_image.mean_hw`; a ``1 x C`` vector is read as C
   channel means); the fused mean is ``cat(3, B's, A's)`` (flow channels first).
3. Layers, vars (except ``label``) and params get the suffix ``_spatial`` /
   ``_temporal`` (each tower is re-created from its struct first, which re-orders
   vars and params by first appearance, as ``loadobj`` does).
4. 2-D fusion conv (``insert_conv_layers``): ``conv_fusion_<k>`` (1x1, ``2C -> C``,
   initialised by ``initMethod``) + ``relu_fusion_<k>`` after each fusion layer when
   there is no Conv3D and no Sum; after the last fusion layer of the fused-into
   tower when a fusion layer is ``prediction`` and Conv3D is on.
5. Optionally the fused-from tower is cut after its (last) fusion layer.
6. Merge (A's layers then B's; meta of B); ``setLrWd`` (filters 1/1, biases 2/0).
7. Per fusion layer row: ``<layerB>_concat`` (Concat, or Sum) of
   ``[spatial outputs, temporal outputs]`` inserted after the fused-into tower's layer;
   the layer after it reads the concat.
8. ``input_flow`` feeds ``conv1_1_temporal``; the first var is renamed ``input``.
9. Conv3D: ``conv53D`` (params ``conv3Df``, ``conv3Db``; var ``conv3D5``; kernel
   ``3 x 3 x 3 x 2C x C``, pad 1, stride 1) and ``relu3D5`` after the concat; the
   layer that read the concat reads ``relu3D5``.
10. Pooling3D: ``pool5_<tower>`` of both towers replaced by ``pool3D5_<tower>``
    (poolSize ``[pool5 T]``, pad ``[pool5 0 0]``, stride ``[pool5 2]``, max).
11. All DropOut rates set to ``dropOutRatio`` (0.85); layers whose name contains
    ``err`` removed; for each non-error Loss, a ``classerror`` Loss
    ``err1_<last 8 chars of its name>`` writing var ``error``.
12. ``meta.normalization.rgbVariance = []``; ``meta.curNumFrames`` as a
    ``cnn_train_dag`` checkpoint holds it: ``T`` per layer, Pooling3D layers their
    output frame count (what ``eval`` writes there).

Generalisations beyond the script (which only works for VGG-16 at ``relu5_3``),
equal to it on the script's own case: the Conv3D width (script: 512) is the fused
layer's channel count; channel counts are read from the nearest conv feeding the
fusion layer; the Conv3D follows the concat of the last non-``prediction`` fusion
layer (script: the hard-coded ``relu5_3_concat``); the layer the flow input feeds is
``conv1_1_temporal`` or, if there is none, every layer reading tower B's input var.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from matconv_port.data.average_image import mean_hw
from matconv_port.errors import ModelFormatError
from matconv_port.fusion import surgery as S
from matconv_port.fusion.init import INIT_METHODS, conv3d_fusion_filter, init_weight
from matconv_port.netspec import LayerSpec, NetSpec, ParamSpec

FUSION_TYPES = ("conv", "sum")
TOWERS = ("spatial", "temporal")

RELU_BLOCK = {"useShortCircuit": True, "leak": 0.0, "opts": []}


@dataclass
class FusionOptions:
    """What ``cnn_ucf101_fusion.m`` lets one choose (defaults = the paper's net).

    * ``fusion_layers``: ``opts.train.fusionLayer``, rows ``(layer in A, layer in B)``.
    * ``fusion_type``: ``"conv"`` (Concat + Conv3D, or Concat + 1x1 conv when
      ``conv3d`` is off) or ``"sum"`` (the script's ``doSum``: a Sum layer, no conv).
    * ``conv3d`` / ``pool3d``: ``addConv3D`` / ``addPool3D``.
    * ``init_method``: ``opts.initMethod`` (see :data:`~matconv_port.fusion.init.INIT_METHODS`).
    * ``fuse_into``: ``"spatial"`` or ``"temporal"``; the other tower is fused from.
    * ``remove_fuse_from``: cut the fused-from tower after the fusion layer.
    * ``frames``: ``nFrames`` (temporal pool size), ``dropout_rate``: ``dropOutRatio``.
    * ``seed``: NumPy seed for random init methods (MATLAB's randn cannot be replayed).
    """

    fusion_layers: list[tuple[str, str]] = field(default_factory=lambda: [("relu5_3", "relu5_3")])
    fusion_type: str = "conv"
    conv3d: bool = True
    pool3d: bool = True
    init_method: str = "2sumAB"
    fuse_into: str = "spatial"
    remove_fuse_from: bool = False
    frames: int = 5
    dropout_rate: float | None = 0.85
    seed: int = 0

    @property
    def fuse_from(self) -> str:
        return "temporal" if self.fuse_into == "spatial" else "spatial"

    def check(self) -> None:
        from matconv_port.errors import MatConvPortError

        if self.fusion_type not in FUSION_TYPES:
            raise MatConvPortError(f"fusion type {self.fusion_type!r} is not one of {', '.join(FUSION_TYPES)} "
                                   "(the original code has Concat+conv and Sum only)")
        if self.fusion_type == "sum" and self.conv3d:
            raise MatConvPortError("fusion type 'sum' cannot be combined with the Conv3D fusion layer: the original's "
                                   "Conv3D expects the concatenation of both towers (use --no-conv3d)")
        if self.fuse_into not in TOWERS:
            raise MatConvPortError(f"fuse-into must be 'spatial' or 'temporal', not {self.fuse_into!r}")
        if self.init_method not in INIT_METHODS:
            raise MatConvPortError(f"unknown init method {self.init_method!r} (known: {', '.join(INIT_METHODS)})")
        if int(self.frames) < 1:
            raise MatConvPortError(f"frames must be >= 1, not {self.frames}")
        if not self.fusion_layers:
            raise MatConvPortError("at least one fusion layer is needed")
        if self.dropout_rate is not None and not 0 <= float(self.dropout_rate) < 1:
            raise MatConvPortError(f"dropout rate must be in [0, 1), not {self.dropout_rate}")


# ---------------------------------------------------------------------------- helpers
def _as_list(value: Any) -> list:
    """A block property (plain float, list, ndarray) as a flat list of floats."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value]
    arr = np.asarray(value, dtype=np.float64)
    return [float(v) for v in arr.reshape(-1, order="F")]


def filter_pad(value: Any) -> list[float]:
    """``dagnn.Filter``'s ``set.pad``: a scalar -> 4 copies, ``[a b]`` -> ``[a a b b]``."""
    pad = _as_list(value)
    if len(pad) == 1:
        return pad * 4
    if len(pad) == 2:
        return [pad[0], pad[0], pad[1], pad[1]]
    return pad


def filter_stride(value: Any) -> list[float]:
    """``dagnn.Filter``'s ``set.stride``: a scalar -> 2 copies."""
    stride = _as_list(value)
    return stride * 2 if len(stride) == 1 else stride


def _cat_means(mean_b: np.ndarray | None, mean_a: np.ndarray | None) -> np.ndarray | None:
    """``cat(3, B, A)``; single if either is single (MATLAB's mixed-class rule)."""
    parts = [m for m in (mean_b, mean_a) if m is not None]
    if not parts:
        return None
    dtype = np.float32 if any(m.dtype == np.float32 for m in parts) else np.float64
    return np.concatenate([m.astype(dtype).reshape(1, 1, -1, order="F") for m in parts], axis=2)


def _filter_of(spec: NetSpec, layer: LayerSpec) -> np.ndarray | None:
    if layer.type in ("dagnn.Conv", "dagnn.Conv3D") and layer.params:
        p = spec.params.get(layer.params[0])
        if p is not None and p.value is not None and np.ndim(p.value) >= 2:
            return np.asarray(p.value)
    return None


def channels_at(spec: NetSpec, index: int) -> int:
    """Output channels of layer ``index``: its own conv filter's last dim, else that of
    the nearest conv upstream (following first inputs), as insert_conv_layers reads
    ``size(filters, 4)`` of the layer or the one before it."""
    producers = {o: i for i, l in enumerate(spec.layers) for o in l.outputs}
    i, seen = index, set()
    while i is not None and i not in seen:
        seen.add(i)
        layer = spec.layers[i]
        f = _filter_of(spec, layer)
        if f is not None:
            shape = f.shape + (1,) * (5 - f.ndim)
            return int(shape[4] if layer.type == "dagnn.Conv3D" else shape[3])
        if layer.type == "dagnn.Concat":
            return sum(channels_at(spec, producers[v]) for v in layer.inputs if v in producers)
        i = producers.get(layer.inputs[0]) if layer.inputs else None
    raise ModelFormatError(f"{spec.source or 'network'}: cannot tell the channel count of layer "
                           f"{spec.layers[index].name!r} (no conv layer feeds it)")


# ---------------------------------------------------------------------------- steps
def _name_prediction(spec: NetSpec, warn) -> None:
    losses = S.layers_of_type(spec, "dagnn.Loss")
    if losses:
        if losses[0] == 0:
            raise ModelFormatError(f"{spec.source or 'network'}: its first layer is a loss layer")
        spec.layers[losses[0] - 1].name = "prediction"
        return
    # a deploy net without losses: the layer before a final SoftMax, else the last layer
    soft = S.layers_of_type(spec, "dagnn.SoftMax")
    i = soft[-1] - 1 if soft and soft[-1] > 0 else len(spec.layers) - 1
    if warn:
        warn(f"warning: {spec.source or 'network'}: no dagnn.Loss layer; naming layer "
             f"{spec.layers[i].name!r} 'prediction'")
    spec.layers[i].name = "prediction"


def _fusion_indices(spec: NetSpec, names: list[str]) -> list[int]:
    return [i for i, l in enumerate(spec.layers) if l.name in names]


def _suffix_tower(spec: NetSpec, suffix: str) -> NetSpec:
    for layer in spec.layers:
        layer.name = layer.name + suffix
    net = S.reload(spec)
    for i in range(len(net.vars)):
        if i < len(net.vars) and net.vars[i].name != "label":
            S.rename_var(net, net.vars[i].name, net.vars[i].name + suffix)
    for name in list(net.params):
        S.rename_param(net, name, name + suffix)
    return net


def insert_conv_layers(spec: NetSpec, layer_idx: list[int], init_method: str,
                       rng: np.random.Generator) -> NetSpec:
    """``network_surgery/insert_conv_layers.m`` (DagNN branch, its defaults: ReLU,
    biases, no batch norm, weightDecay 1): after each given layer (last first) a 1x1
    conv ``conv_fusion_<k>`` (``2C -> C``) and ``relu_fusion_<k>``; the next layer reads
    the ReLU's output."""
    for k in range(len(layer_idx) - 1, -1, -1):
        i = layer_idx[k]
        out = channels_at(spec, i)
        in_ = 2 * out  # opts.autoDims = false
        name = f"_fusion_{k + 1}"
        filters = init_weight(init_method, 1, 1, in_, out, rng=rng)
        conv_name, relu_name = f"conv{name}", f"relu{name}"
        # dagnn.Conv's setters: size padded to 4 dims, pad 0 -> [0 0 0 0], stride 1 -> [1 1]
        conv_block = {"size": ([float(s) for s in filters.shape] + [1.0] * 4)[:4], "hasBias": True,
                      "opts": ["cuDNN"], "pad": filter_pad(0.0), "stride": filter_stride(1.0)}
        for lname, ltype, block, params in ((conv_name, "dagnn.Conv", conv_block, [f"{conv_name}f", f"{conv_name}b"]),
                                            (relu_name, "dagnn.ReLU", dict(RELU_BLOCK), [])):
            S.add_layer_at(spec, i, lname, ltype, block, list(spec.layers[i].outputs), [f"x_{lname}"], params)
            if i + 2 < len(spec.layers):
                spec.layers[i + 2].inputs[0] = f"x_{lname}"
            i += 1
            if params:
                spec.params[params[0]] = ParamSpec(params[0], filters, 1.0, 1.0)
                spec.params[params[1]] = ParamSpec(params[1], np.zeros((1, out), np.float32), 2.0, 0.0)
    return spec


def _pool3d_block(pool5: LayerSpec, frames: int) -> dict:
    b = pool5.block
    return {"method": "max",
            "poolSize": _as_list(b.get("poolSize", [1.0, 2.0])) + [float(frames)],
            "pad": filter_pad(b.get("pad", [0.0, 0.0, 0.0, 0.0])) + [0.0, 0.0],
            "stride": filter_stride(b.get("stride", [1.0, 1.0])) + [2.0]}


def _replace_pool5(net: NetSpec, tower: str, frames: int, required: bool) -> None:
    hits = S.find_layers(net, f"pool5_{tower}")
    if not hits:
        if required:
            raise ModelFormatError(f"{net.source or 'network'}: no layer 'pool5_{tower}' to replace by 3D pooling "
                                   "(use --no-pool3d)")
        return
    i = hits[-1]
    pool5 = net.layers[i]
    S.add_layer_at(net, i, f"pool3D5_{tower}", "dagnn.Pooling3D", _pool3d_block(pool5, frames),
                   list(pool5.inputs), list(pool5.outputs))
    S.remove_layer(net, pool5.name, chain_inputs=False)


def _frames_after_eval(net: NetSpec, frames: int) -> list[float]:
    """``repmat(T, 1, numel(layers))`` with each Pooling3D's output frame count, as
    ``eval`` leaves ``meta.curNumFrames``."""
    cur = [float(frames)] * len(net.layers)
    var_frames: dict[str, int] = {}
    for li in net.execution_order():
        layer = net.layers[li]
        t_in = next((var_frames[v] for v in layer.inputs if v in var_frames), frames)
        t_out = t_in
        if layer.type in ("dagnn.Conv3D", "dagnn.Pooling3D"):
            b = layer.block
            if layer.type == "dagnn.Conv3D":
                size = _as_list(b.get("size", [1, 1, 1]))
                kt = int(size[2]) if len(size) > 2 else 1
            else:
                ps = _as_list(b.get("poolSize", [1, 1, 1]))
                kt = int(ps[2]) if len(ps) > 2 else int(ps[-1])
            pad = _as_list(b.get("pad", [0]))
            pad = pad * 6 if len(pad) == 1 else pad
            st = _as_list(b.get("stride", [1]))
            st_t = int(st[2]) if len(st) > 2 else int(st[0])
            front, back = (int(pad[4]), int(pad[5])) if len(pad) >= 6 else (0, 0)
            t_out = max(1, math.floor((t_in + front + back - kt) / st_t) + 1)
            if layer.type == "dagnn.Pooling3D":
                cur[li] = float(t_out)
        for o in layer.outputs:
            var_frames[o] = t_out
    return cur


# ---------------------------------------------------------------------------- the build
def build_fused_netspec(spec_a: NetSpec, spec_b: NetSpec, options: FusionOptions | None = None,
                        warn=None) -> NetSpec:
    """The fused two-stream net (a NetSpec, params in MatConvNet layout) built from
    the RGB net ``spec_a`` and the flow net ``spec_b`` as cnn_ucf101_fusion.m builds it."""
    opts = options or FusionOptions()
    opts.check()
    rng = np.random.default_rng(opts.seed)
    rows = [(str(a), str(b)) for a, b in opts.fusion_layers]
    add_conv3d, add_pool3d, do_sum = bool(opts.conv3d), bool(opts.pool3d), opts.fusion_type == "sum"
    net_a, net_b = spec_a.copy(), spec_b.copy()
    source = f"{spec_a.source or 'RGB net'} + {spec_b.source or 'flow net'}"

    _name_prediction(net_a, warn)
    _name_prediction(net_b, warn)
    fusion_a = _fusion_indices(net_a, [r[0] for r in rows])
    fusion_b = _fusion_indices(net_b, [r[1] for r in rows])
    for tower, idx, names, spec in (("RGB", fusion_a, [r[0] for r in rows], spec_a),
                                    ("flow", fusion_b, [r[1] for r in rows], spec_b)):
        missing = [n for n in names if n not in {net.name for net in (net_a if tower == "RGB" else net_b).layers}]
        if missing:
            raise ModelFormatError(f"{spec.source or tower + ' net'}: fusion layer(s) {', '.join(missing)} not found "
                                   f"in the {tower} net")

    meta_a, meta_b = copy.deepcopy(net_a.meta), copy.deepcopy(net_b.meta)
    norm_a = meta_a.get("normalization", {}) if isinstance(meta_a.get("normalization"), dict) else {}
    norm_b = meta_b.setdefault("normalization", {})
    if not isinstance(norm_b, dict):
        norm_b = meta_b["normalization"] = {}
    fused_mean = _cat_means(mean_hw(norm_b.get("averageImage")), mean_hw(norm_a.get("averageImage")))
    if fused_mean is not None:
        norm_b["averageImage"] = fused_mean
    net_b.meta = meta_b

    net_a = _suffix_tower(net_a, "_spatial")
    net_b = _suffix_tower(net_b, "_temporal")
    input_b = net_b.vars[0].name if net_b.vars else None

    into_net, into_idx = (net_b, fusion_b) if opts.fuse_into == "temporal" else (net_a, fusion_a)
    if add_conv3d and any("prediction" in n for r in rows for n in r):
        insert_conv_layers(into_net, into_idx[-1:], opts.init_method, rng)
    if not add_conv3d and not do_sum:
        insert_conv_layers(into_net, into_idx, opts.init_method, rng)

    if opts.remove_fuse_from:
        if opts.fuse_from == "spatial":
            S.keep_layers(net_a, fusion_a[-1] + 1)
        else:
            S.keep_layers(net_b, fusion_b[-1] + 1)

    net = S.from_layers(net_a.layers + net_b.layers, list(net_a.params.values()) + list(net_b.params.values()),
                        net_b.meta, source=source)
    S.set_lr_wd(net)

    concat_names = []
    for la, lb in rows:
        key = f"{la}_{opts.fuse_into}" if opts.fuse_into == "spatial" else f"{lb}_{opts.fuse_into}"
        hits = S.find_layers(net, key)
        if not hits:
            raise ModelFormatError(f"{source}: no layer {key!r} to fuse into")
        i_fusion = hits[-1]
        name_concat = f"{lb}_concat"
        inputs = list(net.layers[S.layer_index(net, f"{la}_spatial")].outputs) + \
            list(net.layers[S.layer_index(net, f"{lb}_temporal")].outputs)
        if do_sum:
            S.add_layer_at(net, i_fusion, name_concat, "dagnn.Sum", {}, inputs, [name_concat])
        else:
            S.add_layer_at(net, i_fusion, name_concat, "dagnn.Concat", {"dim": 3.0}, inputs, [name_concat])
        if i_fusion + 2 < len(net.layers):
            net.layers[i_fusion + 2].inputs[0] = name_concat
        concat_names.append((name_concat, la, lb))

    S.add_var(net, "input_flow")
    first_convs = S.find_layers(net, "conv1_1_temporal")
    if first_convs:
        net.layers[first_convs[-1]].inputs = ["input_flow"]
    elif input_b is not None:
        for layer in net.layers:
            layer.inputs = ["input_flow" if v == input_b else v for v in layer.inputs]
    S.rename_var(net, net.vars[0].name, "input")

    if add_conv3d:
        plain = [c for c in concat_names if "prediction" not in c[1] and "prediction" not in c[2]] or concat_names
        name_concat, la, lb = plain[-1]
        i_relu5 = S.layer_index(net, name_concat)
        ca = channels_at(net, S.layer_index(net, f"{la}_spatial"))
        cb = channels_at(net, S.layer_index(net, f"{lb}_temporal"))
        out = ca if opts.fuse_into == "spatial" else cb
        kernel, bias = conv3d_fusion_filter(ca, cb, out, opts.init_method, rng=rng)
        pads = [math.ceil(s / 2) - 1 for s in kernel.shape[:3]]
        block = {"size": [float(s) for s in kernel.shape], "hasBias": True, "opts": ["cuDNN"],
                 "pad": [float(pads[0]), float(pads[0]), float(pads[1]), float(pads[1]), float(pads[2]), float(pads[2])],
                 "stride": [1.0, 1.0, 1.0]}
        readers = [l for l in net.layers if name_concat in l.inputs]
        S.add_layer_at(net, i_relu5, "conv53D", "dagnn.Conv3D", block, list(net.layers[i_relu5].outputs),
                       ["conv3D5"], ["conv3Df", "conv3Db"])
        net.params["conv3Df"].value = kernel
        net.params["conv3Db"].value = bias
        S.add_layer_at(net, i_relu5 + 1, "relu3D5", "dagnn.ReLU", dict(RELU_BLOCK),
                       list(net.layers[i_relu5 + 1].outputs), ["relu3D5"])
        for layer in readers:
            layer.inputs = ["relu3D5" if v == name_concat else v for v in layer.inputs]

    if add_pool3d:
        _replace_pool5(net, opts.fuse_into, int(opts.frames), required=True)
        _replace_pool5(net, opts.fuse_from, int(opts.frames), required=False)

    norm = net.meta.setdefault("normalization", {})
    norm["rgbVariance"] = []
    if opts.dropout_rate is not None:
        S.set_dropout(net, opts.dropout_rate)

    net.layers = [l for l in net.layers if "err" not in l.name]
    S.rebuild(net)
    for layer in S.objective_losses(net.layers):
        S.add_layer(net, f"err1_{layer.name[-8:]}", "dagnn.Loss", {"loss": "classerror", "opts": []},
                        list(layer.inputs), ["error"])

    net.meta["curNumFrames"] = _frames_after_eval(net, int(opts.frames))
    net.source_format = "dagnn"
    net.source = source
    return net
