"""Stock MatConvNet 1.0-beta25 normalisations without parameters:

* ``dagnn.NormOffset`` (SimpleNN ``noffset``; ``matlab/+dagnn/NormOffset.m``,
  ``matlab/vl_nnnoffset.m``): ``L = max(sum_c x^2, 1e-8)``, ``y = x - param(1) L^param(2)``
  (default ``param = [1 0.5]``).
* ``dagnn.SpatialNorm`` (SimpleNN ``spnorm``; ``matlab/+dagnn/SpatialNorm.m``,
  ``matlab/vl_nnspnorm.m``): ``n2`` = average of ``x^2`` over a ``param(1) x param(2)``
  window centred on each pixel (pad ``floor((k - 1) / 2)`` before, the rest after;
  ``vl_nnpool``'s avg, which divides by the in-bounds count), ``y = (1 + param(3) n2)^-param(4) x``
  (default ``param = [2 2 10 2]``).

Both keep the input's shape. Note ``vl_simplenn`` runs the SimpleNN types with
``l.param``; ``fromSimpleNN`` does not convert them (here they map to these DagNN types).
"""
from __future__ import annotations

import torch

from matconv_port.errors import ShapeError
from matconv_port.layers.base import ForwardContext, SameShapeLayer, Shape
from matconv_port.layers.pooling import avg_pool_excluding_pad
from matconv_port.layers.registry import register_layer


@register_layer("dagnn.NormOffset", simplenn="noffset")
class NormOffset(SameShapeLayer):
    def __init__(self, spec):
        super().__init__(spec)
        param = self.block_list("param", [1.0, 0.5])
        if len(param) != 2:
            raise ShapeError(f"layer {self.layer_name!r} (dagnn.NormOffset): param {param} is not [scale exponent]")
        self.param = (param[0], param[1])

    def forward(self, inputs: list[torch.Tensor], params: list[torch.Tensor], ctx: ForwardContext) -> list[torch.Tensor]:
        x = inputs[0]
        L = (x * x).sum(dim=1, keepdim=True).clamp(min=1e-8)
        return [x - self.param[0] * L.pow(self.param[1])]

    def extra_repr(self) -> str:
        return f"{self.layer_name!r}, param={list(self.param)}"


@register_layer("dagnn.SpatialNorm", simplenn="spnorm")
class SpatialNorm(SameShapeLayer):
    def __init__(self, spec):
        super().__init__(spec)
        param = self.block_list("param", [2.0, 2.0, 10.0, 2.0])
        if len(param) != 4 or int(param[0]) != param[0] or int(param[1]) != param[1] or min(param[:2]) < 1:
            raise ShapeError(f"layer {self.layer_name!r} (dagnn.SpatialNorm): param {param} is not "
                             f"[height width alpha beta] with a window of at least 1 x 1")
        self.window = (int(param[0]), int(param[1]))
        self.alpha, self.beta = param[2], param[3]
        kh, kw = self.window
        top, left = (kh - 1) // 2, (kw - 1) // 2
        self.pad = (top, kh - 1 - top, left, kw - 1 - left)

    def forward(self, inputs: list[torch.Tensor], params: list[torch.Tensor], ctx: ForwardContext) -> list[torch.Tensor]:
        x = inputs[0]
        n2 = avg_pool_excluding_pad(x * x, self.window, (1, 1), self.pad)
        f = 1 + self.alpha * n2
        return [f.pow(-self.beta) * x]

    def extra_repr(self) -> str:
        return f"{self.layer_name!r}, window={list(self.window)}, alpha={self.alpha}, beta={self.beta}"
