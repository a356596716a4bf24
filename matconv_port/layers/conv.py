"""Convolution family: ``dagnn.Conv`` (SimpleNN ``conv``) and ``dagnn.ConvTranspose`` (``convt``).

MatConvNet conventions:

* filters are ``H x W x Cin_per_group x Cout``; the number of groups is
  ``Cin / size(filters, 3)`` and output channels form equal consecutive groups;
* biases have ``Cout`` elements (any shape); ``hasBias = false`` means no bias param;
* pad ``[top bottom left right]`` (may be asymmetric), stride ``[sy sx]``, optional
  ``dilate [dy dx]`` (newer MatConvNet; the paper's fork has none);
* fully-connected layers are convolutions whose filter covers the input;
* ConvTranspose filters are ``H x W x K x Cin`` (``K`` outputs per group), with
  ``upsample [uy ux]``, ``crop [top bottom left right]`` and ``numGroups``;
  output size ``(X - 1) * up - crop_before - crop_after + k``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from matconv_port.errors import ShapeError
from matconv_port.layers._padding import pad4, pad_input_2d, stride_n, symmetric_2d
from matconv_port.layers.base import ForwardContext, MatConvNetLayer, Shape
from matconv_port.layers.registry import register_layer


@register_layer("dagnn.Conv", simplenn="conv")
class Conv(MatConvNetLayer):
    param_layouts = ("filter2d", "vector")

    def __init__(self, spec):
        super().__init__(spec)
        self.pad = pad4(self.block_int_list("pad", 0))
        self.stride = stride_n(self.block_int_list("stride", 1), 2)
        self.dilate = stride_n(self.block_int_list("dilate", 1), 2)
        self.has_bias = bool(self.block.get("hasBias", len(spec.params) > 1)) and len(spec.params) > 1
        self._sym = symmetric_2d(self.pad)

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        n, cin, h, w = input_shapes[0]
        cout, cin_g, kh, kw = param_shapes[0]
        if cin_g == 0 or cin % cin_g or cout % (cin // cin_g):
            raise ShapeError(
                f"layer {self.layer_name!r}: input has {cin} channels but the filter depth is {cin_g} "
                f"with {cout} filters (groups must divide both)")
        if self.has_bias and int(np.prod(param_shapes[1])) != cout:
            raise ShapeError(f"layer {self.layer_name!r}: {int(np.prod(param_shapes[1]))} biases for {cout} filters")
        dy, dx = self.dilate
        oh, ow = self.window_sizes(input_shapes, (h, w), (dy * (kh - 1) + 1, dx * (kw - 1) + 1),
                                   f"the {kh}x{kw} filter (dilate {list(self.dilate)})")
        return [(n, cout, oh, ow)]

    def forward(self, inputs: list[torch.Tensor], params: list[torch.Tensor], ctx: ForwardContext) -> list[torch.Tensor]:
        x = inputs[0]
        w = params[0]
        b = params[1] if self.has_bias else None
        cin, cin_g, cout = x.shape[1], w.shape[1], w.shape[0]
        if cin_g == 0 or cin % cin_g or cout % (cin // cin_g):
            raise ShapeError(
                f"layer {self.layer_name!r}: input has {cin} channels but the filter depth is {cin_g} "
                f"with {cout} filters (groups must divide both)")
        groups = cin // cin_g
        if b is not None and b.numel() != cout:
            raise ShapeError(f"layer {self.layer_name!r}: {b.numel()} biases for {cout} filters")
        if self._fully_connected(x, w, groups):
            # a filter covering the whole input (fc6/fc7/fc8): one matrix product, much
            # faster than a 1x1-output convolution on CPU; same sums, other order
            y = F.linear(x.reshape(x.shape[0], -1), w.reshape(cout, -1), b)
            return [y.view(x.shape[0], cout, 1, 1)]
        if self._sym is not None:
            return [F.conv2d(x, w, b, self.stride, self._sym, self.dilate, groups)]
        return [F.conv2d(pad_input_2d(x, self.pad), w, b, self.stride, 0, self.dilate, groups)]


    def _fully_connected(self, x: torch.Tensor, w: torch.Tensor, groups: int) -> bool:
        """True when the conv is a fully-connected layer on this input (and the net is
        not being traced for export, where the input size may vary)."""
        if groups != 1 or any(self.pad) or self.dilate != (1, 1) or tuple(x.shape[2:]) != tuple(w.shape[2:]):
            return False
        return not (torch.jit.is_tracing() or torch.compiler.is_compiling())


@register_layer("dagnn.ConvTranspose", simplenn="convt")
class ConvTranspose(MatConvNetLayer):
    param_layouts = ("filter2d", "vector")

    def __init__(self, spec):
        super().__init__(spec)
        self.upsample = stride_n(self.block_int_list("upsample", 1), 2)
        self.crop = pad4(self.block_int_list("crop", 0))
        self.num_groups = int(self.block_float("numGroups", 1))
        self.has_bias = bool(self.block.get("hasBias", len(spec.params) > 1)) and len(spec.params) > 1

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        n, cin, h, w = input_shapes[0]
        wc, k, kh, kw = param_shapes[0]
        if cin != wc:
            raise ShapeError(f"layer {self.layer_name!r}: input has {cin} channels, filters expect {wc}")
        cout = k * self.num_groups
        if self.has_bias and int(np.prod(param_shapes[1])) != cout:
            raise ShapeError(f"layer {self.layer_name!r}: {int(np.prod(param_shapes[1]))} biases for {cout} output channels")
        top, bottom, left, right = self.crop
        oh = (h - 1) * self.upsample[0] + kh - top - bottom
        ow = (w - 1) * self.upsample[1] + kw - left - right
        if oh <= 0 or ow <= 0:
            raise self.shape_error(input_shapes, f"crop {list(self.crop)} leaves no output")
        return [(n, cout, oh, ow)]

    def forward(self, inputs: list[torch.Tensor], params: list[torch.Tensor], ctx: ForwardContext) -> list[torch.Tensor]:
        x = inputs[0]
        w = params[0]  # Cin x K x H x W (torch layout of MatConvNet's H x W x K x Cin)
        if x.shape[1] != w.shape[0]:
            raise ShapeError(f"layer {self.layer_name!r}: input has {x.shape[1]} channels, filters expect {w.shape[0]}")
        b = params[1] if self.has_bias else None
        cout = w.shape[1] * self.num_groups
        if b is not None and b.numel() != cout:
            raise ShapeError(f"layer {self.layer_name!r}: {b.numel()} biases for {cout} output channels")
        top, bottom, left, right = self.crop
        if top == bottom and left == right:
            return [F.conv_transpose2d(x, w, b, self.upsample, (top, left), 0, self.num_groups)]
        y = F.conv_transpose2d(x, w, b, self.upsample, 0, 0, self.num_groups)
        return [y[:, :, top:y.shape[2] - bottom, left:y.shape[3] - right]]
