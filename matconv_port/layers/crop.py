"""``dagnn.Crop`` (stock MatConvNet 1.0-beta25, ``matlab/+dagnn/Crop.m`` + ``matlab/vl_nncrop.m``).

Crops its first input to the spatial size (H, W) of its second input; channels and
items come from the first. ``crop = [cv cu]`` are the preferred top/left offsets; the
offsets actually used are adapted to the size difference (``Crop.getAdaptedCrops``):
with ``dv = H1 - H2``, top = ``dv - max(0, dv - cv)`` and bottom = ``max(0, dv - cv)``
(the same along W with ``cu``). The pascal-fcn zoo nets use it to align upsampled
scores with the image. A first input smaller than the second makes MATLAB index out of
range: refused here by the shape check.
"""
from __future__ import annotations

import torch

from matconv_port.errors import ShapeError
from matconv_port.layers.base import ForwardContext, MatConvNetLayer, Shape
from matconv_port.layers.registry import register_layer


@register_layer("dagnn.Crop")
class Crop(MatConvNetLayer):
    def __init__(self, spec):
        super().__init__(spec)
        crop = self.block_int_list("crop", [0, 0])
        if len(crop) == 1:
            crop = crop * 2
        if len(crop) != 2:
            raise ShapeError(f"layer {self.layer_name!r} (dagnn.Crop): crop {crop} is not [cv cu]")
        self.crop = (crop[0], crop[1])

    def adapted_crops(self, shape1: Shape, shape2: Shape) -> tuple[int, int, int, int]:
        """``[top bottom left right]`` as ``Crop.getAdaptedCrops``; the shape check's error
        where the first input is smaller than the second or a layer input is not 4-D."""
        if len(shape1) != 4 or len(shape2) != 4:
            raise self.shape_error([shape1, shape2], "Crop takes two H x W x C x N inputs")
        dv = shape1[2] - shape2[2]
        du = shape1[3] - shape2[3]
        if dv < 0 or du < 0:
            raise self.shape_error([shape1, shape2], "the first input is smaller than the second "
                                                     "(Crop only crops the first input to the second's H x W)")
        v1 = max(0, dv - self.crop[0])
        u1 = max(0, du - self.crop[1])
        return (dv - v1, v1, du - u1, u1)

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        if len(input_shapes) != 2:
            raise self.shape_error(input_shapes, f"Crop takes 2 inputs, got {len(input_shapes)}")
        top, bottom, left, right = self.adapted_crops(tuple(input_shapes[0]), tuple(input_shapes[1]))
        n, c, h, w = input_shapes[0]
        return [(n, c, h - top - bottom, w - left - right)]

    def forward(self, inputs: list[torch.Tensor], params: list[torch.Tensor], ctx: ForwardContext) -> list[torch.Tensor]:
        self.output_shapes([tuple(t.shape) for t in inputs], [], ctx)
        x, ref = inputs[0], inputs[1]
        top, bottom, left, right = self.adapted_crops(tuple(x.shape), tuple(ref.shape))
        # a copy, never a view of the first input (a later in-place layer must not write into it)
        return [x[:, :, top:x.shape[2] - bottom, left:x.shape[3] - right].clone(memory_format=torch.contiguous_format)]

    def extra_repr(self) -> str:
        return f"{self.layer_name!r}, crop={list(self.crop)}"
