"""The two SimpleNN layer types of FFDNet (``cszn/FFDNet``, ``TrainingCodes/FFDNet_TrainingCodes_v1.0``),
which its own ``vl_simplenn.m`` runs:

* ``SubP`` (``utilities/vl_nnSubP.m``): pixel (un)shuffle in MATLAB's index order. With
  ``scale`` s > 1 (integer): ``H x W x C x N`` -> ``sH x sW x C/s^2 x N``, input channel
  ``(c-1) s^2 + i`` (i = 1..s^2) going to the pixels ``(a, b)`` of each s x s block with
  ``a = mod(i-1, s) + 1`` (rows fastest), ``b = floor((i-1)/s) + 1``. With ``scale`` < 1:
  s = ``round(1/scale)``, the inverse (``H x W x C`` -> ``H/s x W/s x C s^2``). Sizes that do
  not divide are refused naming the layer (MATLAB would index past the end or make
  fractional sizes).
* ``concat`` (``vl_simplenn.m``, ``case 'concat'``): ``vl_nnconcat({x, sigmaMap})`` where
  ``sigmaMap`` is the MATLAB global ``sigmas`` (the noise level, a scalar or one value per
  image: ``permute(sigmas, [3 4 1 2])``) broadcast to ``H x W x 1 x N``. Here ``sigmas`` is
  an input var of the net (the SimpleNN reader adds it), of ``N`` or 1 values.

These are not MatConvNet's types; only FFDNet's ``vl_simplenn`` runs them.
"""
from __future__ import annotations

import torch

from matconv_port.errors import ModelFormatError
from matconv_port.layers.base import ForwardContext, MatConvNetLayer, Shape
from matconv_port.layers.registry import register_layer


@register_layer("ffdnet.SubP", simplenn="SubP")
class SubP(MatConvNetLayer):
    def __init__(self, spec):
        super().__init__(spec)
        scale = self.block_list("scale", 2)
        where = f"layer {self.layer_name!r} (FFDNet SubP)"
        if len(scale) != 1 or not scale[0] > 0:
            raise ModelFormatError(f"{where}: scale must be one positive number, got {scale}")
        s = scale[0]
        if s > 1:
            if not float(s).is_integer():
                raise ModelFormatError(f"{where}: scale {s} > 1 must be an integer")
            self.factor, self.up = int(s), True
        else:
            self.factor, self.up = int(round(1 / s)), False
            if self.factor < 1:
                raise ModelFormatError(f"{where}: scale {s} gives no factor")

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        n, c, h, w = input_shapes[0]
        s = self.factor
        if self.up:
            if c % (s * s):
                raise self.shape_error(input_shapes, f"{c} channels do not divide by scale^2 = {s * s}")
            return [(n, c // (s * s), h * s, w * s)]
        if h % s or w % s:
            raise self.shape_error(input_shapes, f"H and W must divide by {s} (scale {1 / s:g})")
        return [(n, c * s * s, h // s, w // s)]

    def forward(self, inputs, params, ctx: ForwardContext):
        x = inputs[0]
        self.output_shapes([tuple(x.shape)], [], ctx)
        n, c, h, w = x.shape
        s = self.factor
        # channel index (c-1)*s^2 + i with i-1 = (b-1)*s + (a-1): a (row offset) fastest
        if self.up:
            y = x.reshape(n, c // (s * s), s, s, h, w)          # N, C', b, a, H, W
            y = y.permute(0, 1, 4, 3, 5, 2)                      # N, C', H, a, W, b
            return [y.reshape(n, c // (s * s), h * s, w * s)]
        y = x.reshape(n, c, h // s, s, w // s, s)                # N, C, H', a, W', b
        y = y.permute(0, 1, 5, 3, 2, 4)                          # N, C, b, a, H', W'
        return [y.reshape(n, c * s * s, h // s, w // s)]

    def extra_repr(self) -> str:
        return f"{self.layer_name!r}, {'up' if self.up else 'down'} x{self.factor}"


@register_layer("ffdnet.SigmaConcat", simplenn="concat")
class SigmaConcat(MatConvNetLayer):
    """Inputs: the features and ``sigmas`` (N or 1 values: the noise level of each image)."""

    def __init__(self, spec):
        super().__init__(spec)
        if len(spec.inputs) != 2:
            raise ModelFormatError(f"layer {self.layer_name!r} (FFDNet concat): needs the features and the "
                                   f"noise level 'sigmas' as inputs, has {list(spec.inputs)}")

    def input_shape_hint(self, slot: int, items: int) -> Shape | None:
        return (items, 1, 1, 1) if slot == 1 else None

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        n, c, h, w = input_shapes[0]
        k = 1
        for d in input_shapes[1]:
            k *= d
        if k not in (1, n):
            raise self.shape_error(input_shapes, f"sigmas holds {k} values; it must hold 1 or one per image ({n})")
        return [(n, c + 1, h, w)]

    def forward(self, inputs, params, ctx: ForwardContext):
        x, sigmas = inputs[0], inputs[1]
        self.output_shapes([tuple(x.shape), tuple(sigmas.shape)], [], ctx)
        n, _, h, w = x.shape
        level = sigmas.reshape(-1).to(x.dtype).to(x.device)
        sigma_map = level.reshape(-1, 1, 1, 1).expand(n, 1, h, w)
        return [torch.cat([x, sigma_map], dim=1)]
