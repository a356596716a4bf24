"""``dagnn.GlobalPooling`` from mcnExtraLayers (``albanie/mcnExtraLayers``,
``matlab/+dagnn/GlobalPooling.m``, ``matlab/vl_nnglobalpool.m``).

Pools each channel over every spatial position: ``method = 'avg'`` (the default)
is ``mean(mean(x, 1), 2)``, ``'max'`` is ``max(max(x, [], 1), [], 2)``; the output is
``1 x 1 x C x N``. Any other method is refused (``vl_nnglobalpool`` raises an error).
The properties ``GlobalPooling`` inherits from ``dagnn.Filter`` (``pad``, ``stride``...)
are saved in the file but not used.
"""
from __future__ import annotations

from matconv_port.errors import ModelFormatError
from matconv_port.layers.base import ForwardContext, MatConvNetLayer, Shape
from matconv_port.layers.registry import register_layer

METHODS = ("avg", "max")


@register_layer("dagnn.GlobalPooling")
class GlobalPooling(MatConvNetLayer):
    def __init__(self, spec):
        super().__init__(spec)
        method = self.block.get("method", "avg")
        if method == [] or method is None:
            method = "avg"
        if method not in METHODS:
            raise ModelFormatError(f"layer {self.layer_name!r} (dagnn.GlobalPooling): method {method!r} is not "
                                   f"'avg' or 'max'")
        self.method = method

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        n, c = input_shapes[0][:2]
        return [(n, c, 1, 1)]

    def forward(self, inputs, params, ctx: ForwardContext):
        x = inputs[0]
        if self.method == "avg":
            # MATLAB's order: the mean over H, then over W
            return [x.mean(dim=2, keepdim=True).mean(dim=3, keepdim=True)]
        return [x.amax(dim=(2, 3), keepdim=True)]

    def extra_repr(self) -> str:
        return f"{self.layer_name!r}, method={self.method!r}"
