"""Layers that combine vars: ``dagnn.Concat``, ``dagnn.Sum``, ``dagnn.Scale``.

Concat's ``dim`` is MATLAB's (1 = H, 2 = W, 3 = channels, 4 = items); inputs are
joined in the order listed. The paper's fork zero-pads inputs of different spatial
sizes at the bottom/right (``padarray(x, pad, 'post')``) to the largest H and W
before joining; stock MatConvNet refuses them (``semantics="stock"``, see
:mod:`matconv_port.semantics`). Scale is ``bsxfun(@times, x, a) (+ b)`` where ``a``/``b``
come from the params (``H x W x C`` maps broadcast against the activation) or, when
the layer has no params, from its 2nd/3rd inputs.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from matconv_port.errors import ShapeError
from matconv_port.layers.base import ForwardContext, MatConvNetLayer, Shape
from matconv_port.layers.registry import register_layer
from matconv_port.layout import mcn_size

#: MATLAB dimension (1-based, H x W x C x N) -> torch dimension (N x C x H x W)
MATLAB_DIM_TO_TORCH = {1: 2, 2: 3, 3: 1, 4: 0}


@register_layer("dagnn.Concat")
class Concat(MatConvNetLayer):
    def __init__(self, spec):
        super().__init__(spec)
        dim = int(self.block_float("dim", 3))
        if dim not in MATLAB_DIM_TO_TORCH:
            raise ShapeError(f"layer {self.layer_name!r}: Concat dim {dim} is not one of 1..4")
        self.dim = MATLAB_DIM_TO_TORCH[dim]

    def _check_stock(self, input_shapes) -> None:
        """Stock MatConvNet (``vl_nnconcat`` -> ``cat``) refuses inputs whose sizes differ
        outside ``dim``; only the paper's fork pads them."""
        if self.semantics != "stock":
            return
        first = input_shapes[0]
        for s in input_shapes[1:]:
            if any(a != b for i, (a, b) in enumerate(zip(s, first)) if i != self.dim):
                sizes = ", ".join(mcn_size(x) for x in input_shapes)
                raise ShapeError(f"layer {self.layer_name!r} (dagnn.Concat) cannot concatenate inputs of sizes {sizes} "
                                 f"(HxWxCxN) under stock MatConvNet semantics (the paper's fork zero-pads different "
                                 f"H, W: --semantics fork)")

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        """Fork: inputs zero-padded at the bottom/right to the largest H, W, then joined.
        Stock: sizes must agree outside ``dim``."""
        self._check_stock([tuple(s) for s in input_shapes])
        max_h = max(s[2] for s in input_shapes)
        max_w = max(s[3] for s in input_shapes)
        padded = [(s[0], s[1], max_h, max_w) for s in input_shapes]
        d = self.dim
        for s in padded[1:]:
            if any(a != b for i, (a, b) in enumerate(zip(s, padded[0])) if i != d):
                sizes = ", ".join(mcn_size(x) for x in input_shapes)
                raise ShapeError(f"layer {self.layer_name!r} (dagnn.Concat) cannot concatenate inputs of sizes "
                                 f"{sizes} (HxWxCxN)")
        out = list(padded[0])
        out[d] = sum(s[d] for s in padded)
        return [tuple(out)]

    def forward(self, inputs, params, ctx: ForwardContext):
        inputs = list(inputs)
        self._check_stock([tuple(t.shape) for t in inputs])
        max_h = max(t.shape[2] for t in inputs)
        max_w = max(t.shape[3] for t in inputs)
        inputs = [t if (t.shape[2], t.shape[3]) == (max_h, max_w)
                  else F.pad(t, (0, max_w - t.shape[3], 0, max_h - t.shape[2])) for t in inputs]
        try:
            return [torch.cat(inputs, dim=self.dim)]
        except RuntimeError as exc:
            shapes = [tuple(t.shape) for t in inputs]
            raise ShapeError(f"layer {self.layer_name!r}: cannot concatenate inputs of shapes (NxCxHxW) {shapes}") from exc


@register_layer("dagnn.Sum")
class Sum(MatConvNetLayer):
    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        for s in input_shapes[1:]:
            if tuple(s) != tuple(input_shapes[0]):
                raise ShapeError(f"layer {self.layer_name!r}: Sum of inputs of shapes {tuple(input_shapes[0])} and {tuple(s)}")
        return [tuple(input_shapes[0])]

    def forward(self, inputs, params, ctx: ForwardContext):
        y = inputs[0]
        for x in inputs[1:]:
            if x.shape != y.shape:
                raise ShapeError(f"layer {self.layer_name!r}: Sum of inputs of shapes {tuple(y.shape)} and {tuple(x.shape)}")
            y = y + x
        return [y]


@register_layer("dagnn.Scale")
class Scale(MatConvNetLayer):
    param_layouts = ("map", "map")

    def __init__(self, spec):
        super().__init__(spec)
        self.has_bias = bool(self.block.get("hasBias", True))

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        args = [tuple(s) for s in list(input_shapes) + list(param_shapes)][: 3 if self.has_bias else 2]
        if len(args) < (3 if self.has_bias else 2):
            raise self.shape_error(input_shapes, f"{len(args)} operands for x * a{' + b' if self.has_bias else ''}")
        try:
            return [tuple(int(v) for v in np.broadcast_shapes(*args))]
        except ValueError:
            raise self.shape_error(input_shapes, f"cannot broadcast shapes {args} (NxCxHxW)") from None

    def forward(self, inputs, params, ctx: ForwardContext):
        args = list(inputs) + list(params)
        y = args[0] * args[1]
        if self.has_bias:
            y = y + args[2]
        return [y]
