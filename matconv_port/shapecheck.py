"""Shape inference without computation (each layer type's shape arithmetic).

Used to shape-check every layer while converting (a wrong network is never written
silently) and by ``inspect`` to print each var's size. Sizes are reported the
MatConvNet way, ``H x W x C x N``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from matconv_port.errors import MatConvPortError, ShapeError
from matconv_port.layers.base import ForwardContext
from matconv_port.layout import mcn_size

#: tried in turn when the file states no input size (fully-connected heads need one)
CANDIDATE_SIZES = (224, 227, 32, 64, 28, 12, 20, 16, 40, 48, 96, 112, 128, 256)


def _meta_size(meta: dict) -> list[int] | None:
    """``[H, W, (C)]`` from ``meta.normalization.imageSize`` or ``meta.inputSize``."""
    candidates = []
    norm = meta.get("normalization") if isinstance(meta, dict) else None
    if isinstance(norm, dict):
        candidates.append(norm.get("imageSize"))
    if isinstance(meta, dict):
        candidates.append(meta.get("inputSize"))
    for value in candidates:
        if value is None:
            continue
        try:
            arr = [int(round(float(v))) for v in np.asarray(value, dtype=float).ravel()]
        except (TypeError, ValueError):
            continue
        if len(arr) == 1 and arr[0] > 0:
            return [arr[0], arr[0]]
        if len(arr) >= 2 and arr[0] > 0 and arr[1] > 0:
            return arr[:3]
    return None


#: layer types whose output has as many channels as their (first) input
CHANNEL_PRESERVING = ("dagnn.ReLU", "dagnn.LRN", "dagnn.Pooling", "dagnn.DropOut", "dagnn.SoftMax",
                      "dagnn.Sigmoid", "dagnn.Pooling3D", "dagnn.Sum")


def input_channels(model, var: str) -> int | None:
    """Channels an input var must have, read from the first layer with parameters
    that consumes it (through channel-preserving layers such as ReLU, LRN, pooling)."""
    seen: set[str] = set()
    while var not in seen:
        seen.add(var)
        consumer = next((model.layer_specs[li] for li in model.execution_order
                         if var in model.layer_specs[li].inputs), None)
        if consumer is None:
            return None
        if consumer.params and consumer.inputs[0] == var:
            w = model.param(consumer.params[0])
            if consumer.type in ("dagnn.Conv", "dagnn.Conv3D"):
                return int(w.shape[1])
            if consumer.type == "dagnn.ConvTranspose":
                return int(w.shape[0])
            if consumer.type == "dagnn.BatchNorm":
                return int(w.numel())
            return None
        if consumer.type in CHANNEL_PRESERVING and consumer.outputs:
            var = consumer.outputs[0]
            continue
        return None
    return None


def _input_shape_hint(model, var: str, items: int) -> tuple | None:
    """The shape the first layer reading ``var`` asks for when ``var`` is not an image
    (:meth:`~matconv_port.layers.base.MatConvNetLayer.input_shape_hint`), or None."""
    for li in model.execution_order:
        lspec = model.layer_specs[li]
        if var in lspec.inputs:
            hint = model.layers[li].input_shape_hint(list(lspec.inputs).index(var), items)
            return tuple(int(s) for s in hint) if hint is not None else None
    return None


def default_input_shapes(model, size: Sequence[int] | None = None, num_videos: int = 1) -> dict[str, tuple[int, int, int, int]]:
    """N x C x H x W shapes for the data inputs: size from ``size`` or ``meta``;
    channels from the consuming layer (else meta's 3rd size, else 1)."""
    hw = list(size) if size else _meta_size(model.meta)
    frames = model.frames_per_clip or 1
    shapes = {}
    for v in model.input_vars:
        hint = _input_shape_hint(model, v, num_videos * frames)
        if hint is not None:
            shapes[v] = hint
            continue
        c = input_channels(model, v)
        if c is None:
            c = int(hw[2]) if hw and len(hw) > 2 else 1
        h, w = (int(hw[0]), int(hw[1])) if hw else (CANDIDATE_SIZES[0], CANDIDATE_SIZES[0])
        shapes[v] = (num_videos * frames, c, h, w)
    return shapes


def infer_var_shapes(model, input_shapes: dict[str, tuple], num_videos: int = 1, use_meta: bool = False) -> dict[str, tuple]:
    """Every var's N x C x H x W shape for data inputs of ``input_shapes``. Layer
    failures raise :class:`ShapeError` naming the layer.

    Each layer's :meth:`~matconv_port.layers.base.MatConvNetLayer.output_shapes`
    computes its outputs' shapes by arithmetic; a layer without one (a user's custom
    type) is run on ``meta`` tensors (no data; the first such run imports much of
    torch's compiler stack, about a second). ``use_meta`` runs every layer that way
    (the reference the arithmetic is tested against)."""
    ctx = ForwardContext(num_videos=num_videos, training=False, lrn_mode="exact")
    shapes: dict[str, tuple] = {name: tuple(int(v) for v in shape) for name, shape in input_shapes.items()}
    param_shapes = {key: tuple(p.shape) for key, p in model.params.items()}
    for li in model.execution_order:
        lspec = model.layer_specs[li]
        if any(v not in shapes for v in lspec.inputs):
            continue
        module = model.layers[li]
        in_shapes = [shapes[v] for v in lspec.inputs]
        p_shapes = [param_shapes[k] for k in model._layer_param_keys[li]]
        outs = None if use_meta else module.output_shapes(in_shapes, p_shapes, ctx)
        if outs is None:
            outs = _meta_output_shapes(model, li, in_shapes, ctx)
        for name, shape in zip(lspec.outputs, outs):
            shapes[name] = tuple(int(v) for v in shape)
    return shapes


def _meta_output_shapes(model, li: int, in_shapes: list[tuple], ctx: ForwardContext) -> list[tuple]:
    """Run layer ``li`` on ``meta`` tensors of these shapes."""
    lspec = model.layer_specs[li]
    inputs = [torch.empty(s, dtype=model.dtype, device="meta") for s in in_shapes]
    params = [torch.empty(model.params[k].shape, dtype=model.params[k].dtype, device="meta")
              for k in model._layer_param_keys[li]]
    try:
        outs = model.layers[li](inputs, params, ctx)
    except MatConvPortError as exc:
        raise ShapeError(str(exc)) from None
    except (RuntimeError, ValueError, IndexError, NotImplementedError) as exc:
        sizes = ", ".join(f"{v} {mcn_size(s)}" for v, s in zip(lspec.inputs, in_shapes))
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ShapeError(f"layer {lspec.name!r} ({lspec.type}) cannot take input {sizes} (HxWxCxN): {msg}") from None
    return [tuple(t.shape) for t in outs]


def check_shapes(model, size: Sequence[int] | None = None) -> dict[str, tuple]:
    """Shape-check every layer on a one-video input. With no size given or stated
    in ``meta``, common sizes are tried (a net with fully-connected layers needs
    one); the first error is reported if none fits."""
    if not model.input_vars:
        return {}
    stated = list(size) if size else _meta_size(model.meta)
    tries = [stated] if stated else [[s, s] for s in CANDIDATE_SIZES]
    first_error: ShapeError | None = None
    for hw in tries:
        try:
            return infer_var_shapes(model, default_input_shapes(model, hw), num_videos=1)
        except ShapeError as exc:
            first_error = first_error or exc
    assert first_error is not None
    if stated:
        raise first_error
    raise ShapeError(f"{first_error} (the file states no input size; none of {list(CANDIDATE_SIZES)} fits: "
                     f"give one with --input-size H,W)")
