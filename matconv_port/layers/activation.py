"""Element-wise and channel-wise activations: ReLU (with ``leak``), Sigmoid,
SoftMax (over channels at every position) and DropOut.

DropOut is the identity at test time and, in training, zeroes with probability
``rate`` and scales the kept values by ``1 / (1 - rate)`` (``vl_nndropout``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from matconv_port.layers.base import ForwardContext, SameShapeLayer
from matconv_port.layers.registry import register_layer


@register_layer("dagnn.ReLU", simplenn="relu")
class ReLU(SameShapeLayer):
    """``vl_nnrelu``: ``max(x, 0)``, or ``x * (leak + (1 - leak) * (x > 0))`` with a leak."""

    def __init__(self, spec):
        super().__init__(spec)
        self.leak = self.block_float("leak", 0.0)

    def forward(self, inputs, params, ctx: ForwardContext):
        x = inputs[0]
        inplace = ctx.overwrite_input and not (torch.is_grad_enabled() and x.requires_grad)
        if self.leak == 0:
            return [F.relu_(x) if inplace else F.relu(x)]
        return [F.leaky_relu_(x, self.leak) if inplace else F.leaky_relu(x, self.leak)]


@register_layer("dagnn.Sigmoid", simplenn="sigmoid")
class Sigmoid(SameShapeLayer):
    def forward(self, inputs, params, ctx: ForwardContext):
        return [torch.sigmoid(inputs[0])]


@register_layer("dagnn.SoftMax", simplenn="softmax")
class SoftMax(SameShapeLayer):
    """``vl_nnsoftmax``: softmax over the channel dimension (MatConvNet dim 3)."""

    def forward(self, inputs, params, ctx: ForwardContext):
        return [torch.softmax(inputs[0], dim=1)]


@register_layer("dagnn.DropOut", simplenn="dropout")
class DropOut(SameShapeLayer):
    def __init__(self, spec):
        super().__init__(spec)
        self.rate = self.block_float("rate", 0.5)

    def forward(self, inputs, params, ctx: ForwardContext):
        x = inputs[0]
        if not ctx.training or self.rate <= 0:
            return [x]
        keep = (torch.rand_like(x) >= self.rate).to(x.dtype)
        return [x * keep * (1.0 / (1.0 - self.rate))]
