"""``dagnn.PDist`` (SimpleNN ``pdist``): p-distance between two inputs, stock MatConvNet
1.0-beta25 (``matlab/+dagnn/PDist.m``, ``matlab/vl_nnpdist.m``,
``matlab/simplenn/vl_simplenn.m``).

``d = x - x0`` (MATLAB ``bsxfun``: ``x0`` may broadcast), then over channels:
``p == 1``: ``sum |d|``; ``p == 2``: ``sqrt(sum d^2)`` (``sum d^2`` with ``noRoot``);
otherwise ``(sum |d|^p)^(1/p)`` (``sum |d|^p`` with ``noRoot``). Output
``H x W x 1 x N``, times the ``instanceWeights`` (DagNN: an optional third input;
SimpleNN: the layer's field) when given, summed to a scalar with ``aggregate``.
``epsilon`` only enters the derivatives. Block options: ``p`` (default 2),
``aggregate`` (DagNN default TRUE, SimpleNN/``vl_nnpdist`` default false), ``noRoot``
and ``epsilon`` as DagNN ``opts`` name/value pairs or SimpleNN fields.

PDist is a ``dagnn.Loss`` in MatConvNet: its second input (``x0``; SimpleNN: the
layer's ``class`` field, fed as the ``label`` var) is a target.
"""
from __future__ import annotations

import numpy as np
import torch

from matconv_port.errors import ShapeError
from matconv_port.layers.base import ForwardContext, MatConvNetLayer, Shape
from matconv_port.layers.registry import register_layer
from matconv_port.netspec import as_float_list


def _opts(value) -> dict:
    out = {}
    if isinstance(value, (list, tuple)):
        items = list(value)
        for i in range(0, len(items) - 1, 2):
            if isinstance(items[i], str):
                out[items[i].lower()] = items[i + 1]
    elif isinstance(value, dict):
        out = {k.lower(): v for k, v in value.items()}
    return out


def _flag(value) -> bool:
    vals = as_float_list(value) if value is not None and not isinstance(value, str) else []
    return bool(vals[0]) if vals else False


def pdist(x: torch.Tensor, x0: torch.Tensor, p: float, no_root: bool) -> torch.Tensor:
    """vl_nnpdist forward (before instance weights / aggregation): N x 1 x H x W."""
    d = x - x0
    if p == 1:
        return d.abs().sum(dim=1, keepdim=True)
    if p == 2:
        s = (d * d).sum(dim=1, keepdim=True)
        return s if no_root else s.sqrt()
    s = d.abs().pow(p).sum(dim=1, keepdim=True)
    return s if no_root else s.pow(1.0 / p)


@register_layer("dagnn.PDist", simplenn="pdist")
class PDist(MatConvNetLayer):
    needs_label = True

    def __init__(self, spec):
        super().__init__(spec)
        opts = _opts(self.block.get("opts"))
        simplenn = "noRoot" in self.block  # SimpleNN fields (vl_simplenn_tidy fills them)
        self.p = self.block_float("p", 2.0)
        self.aggregate = _flag(self.block.get("aggregate", False if simplenn else True))
        self.no_root = _flag(opts.get("noroot", self.block.get("noRoot", False)))
        self.epsilon = float(as_float_list(opts.get("epsilon", self.block.get("epsilon", 1e-6)))[0])
        w = self.block.get("instanceWeights")
        self.instance_weights = None
        if w is not None and not isinstance(w, str) and np.asarray(w).size:
            self.register_buffer("instance_weights", torch.as_tensor(np.asarray(w, dtype=np.float64)),
                                 persistent=False)
        if not (self.p > 0):
            raise ShapeError(f"layer {self.layer_name!r} (dagnn.PDist): p = {self.p} must be positive")

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        if len(input_shapes) not in (2, 3):
            raise self.shape_error(input_shapes, f"PDist takes 2 or 3 inputs (x, x0[, instanceWeights]), "
                                                 f"got {len(input_shapes)}")
        x = tuple(input_shapes[0])
        try:
            b = np.broadcast_shapes(x, tuple(input_shapes[1]))
        except ValueError:
            raise self.shape_error(input_shapes, "x0 does not broadcast against x") from None
        out = (b[0], 1, b[2], b[3])
        if len(input_shapes) == 3:
            try:
                out = tuple(np.broadcast_shapes(out, tuple(input_shapes[2])))
            except ValueError:
                raise self.shape_error(input_shapes, "instanceWeights do not broadcast against the distances") from None
        return [(1, 1, 1, 1)] if self.aggregate else [tuple(int(v) for v in out)]

    def forward(self, inputs: list[torch.Tensor], params: list[torch.Tensor], ctx: ForwardContext) -> list[torch.Tensor]:
        x = inputs[0]
        x0 = inputs[1].to(x.dtype)
        if x0.dim() < 4:
            x0 = x0.reshape(tuple(x0.shape) + (1,) * (4 - x0.dim())) if x0.dim() else x0
        y = pdist(x, x0, self.p, self.no_root)
        weights = inputs[2] if len(inputs) == 3 else None
        if weights is None and self.instance_weights is not None:
            from matconv_port.layout import from_matconvnet_layout

            weights = from_matconvnet_layout(self.instance_weights)
        if weights is not None:
            y = y * weights.to(device=y.device, dtype=y.dtype)
        if self.aggregate:
            y = y.sum().reshape(1, 1, 1, 1)
        return [y]

    def extra_repr(self) -> str:
        return f"{self.layer_name!r}, p={self.p}, noRoot={self.no_root}, aggregate={self.aggregate}"
