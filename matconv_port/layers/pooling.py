"""``dagnn.Pooling`` (SimpleNN ``pool``): 2D max or average pooling.

MatConvNet conventions: ``poolSize [ph pw]`` (scalar = square), pad
``[top bottom left right]``, stride ``[sy sx]``; every pad is smaller than the pool
size. Max pooling ignores padding. Average pooling clips each window to the input
and divides by the number of in-bounds elements (padding excluded from the count),
on CPU and GPU alike. A missing ``method`` means max (``vl_nnpool``'s default).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from matconv_port.errors import ShapeError
from matconv_port.layers._padding import pad4, pad_input_2d, stride_n
from matconv_port.layers.base import ForwardContext, MatConvNetLayer, Shape
from matconv_port.layers.registry import register_layer


def avg_pool_excluding_pad(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...],
                           pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Average over the in-bounds part of each window (MatConvNet's avg pooling)."""
    if not any(pad):
        return F.avg_pool2d(x, kernel, stride)
    top, bottom, left, right = pad
    if top == bottom and left == right and 2 * top <= kernel[0] and 2 * left <= kernel[1]:
        return F.avg_pool2d(x, kernel, stride, (top, left), ceil_mode=False, count_include_pad=False)
    area = float(kernel[0] * kernel[1])
    sums = F.avg_pool2d(pad_input_2d(x, pad), kernel, stride) * area
    ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device)
    counts = F.avg_pool2d(pad_input_2d(ones, pad), kernel, stride) * area
    return sums / counts


def max_pool_ignoring_pad(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...],
                          pad: tuple[int, int, int, int]) -> torch.Tensor:
    top, bottom, left, right = pad
    if top == bottom and left == right and 2 * top <= kernel[0] and 2 * left <= kernel[1]:
        return F.max_pool2d(x, kernel, stride, (top, left))
    return F.max_pool2d(pad_input_2d(x, pad, float("-inf")), kernel, stride)


@register_layer("dagnn.Pooling", simplenn="pool")
class Pooling(MatConvNetLayer):
    def __init__(self, spec):
        super().__init__(spec)
        self.method = str(self.block.get("method") or "max").lower()
        if self.method not in ("max", "avg"):
            raise ShapeError(f"layer {self.layer_name!r}: unknown pooling method {self.method!r} (max or avg)")
        self.kernel = stride_n(self.block_int_list("poolSize", 1), 2)
        self.pad = pad4(self.block_int_list("pad", 0))
        self.stride = stride_n(self.block_int_list("stride", 1), 2)
        ph, pw = self.kernel
        t, b, l, r = self.pad
        if max(t, b) >= ph or max(l, r) >= pw:
            raise ShapeError(f"layer {self.layer_name!r}: pad {list(self.pad)} must be smaller than the pool size {list(self.kernel)}")

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        n, c, h, w = input_shapes[0]
        oh, ow = self.window_sizes(input_shapes, (h, w), self.kernel, f"the {self.kernel[0]}x{self.kernel[1]} pool")
        return [(n, c, oh, ow)]

    def forward(self, inputs: list[torch.Tensor], params: list[torch.Tensor], ctx: ForwardContext) -> list[torch.Tensor]:
        x = inputs[0]
        if self.method == "max":
            return [max_pool_ignoring_pad(x, self.kernel, self.stride, self.pad)]
        return [avg_pool_excluding_pad(x, self.kernel, self.stride, self.pad)]
