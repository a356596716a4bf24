"""``dagnn.Axpy`` from mcnExtraLayers (``albanie/mcnExtraLayers``, ``matlab/+dagnn/Axpy.m``,
``matlab/vl_nnaxpy.m``): ``y = bsxfun(@times, a, x1) + x2`` for the inputs
``{a, x1, x2}`` (``a`` typically ``1 x 1 x C x N`` channel weights, as in SENets).
MATLAB's ``bsxfun`` broadcasting is NumPy's on ``N x C x H x W`` tensors (every
activation here is 4-D); shapes that do not broadcast are refused naming the layer.
"""
from __future__ import annotations

import numpy as np

from matconv_port.layers.base import ForwardContext, MatConvNetLayer, Shape
from matconv_port.layers.registry import register_layer


@register_layer("dagnn.Axpy")
class Axpy(MatConvNetLayer):
    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        if len(input_shapes) != 3:
            raise self.shape_error(input_shapes, f"needs 3 inputs (a, x1, x2), got {len(input_shapes)}")
        try:
            return [tuple(int(v) for v in np.broadcast_shapes(*(tuple(s) for s in input_shapes)))]
        except ValueError:
            raise self.shape_error(input_shapes, "a .* x1 + x2 does not broadcast") from None

    def forward(self, inputs, params, ctx: ForwardContext):
        a, x1, x2 = inputs
        return [a * x1 + x2]
