"""3D layers of MexConv3D used by the fused two-stream net: ``dagnn.Conv3D`` and
``dagnn.Pooling3D``.

A batch of ``V`` videos with ``T`` frames is stored as ``V*T`` items, frames fastest
(item = video * T + frame). The layers reshape ``(V*T) x C x H x W`` to
``V x C x T x H x W`` using the net's current number of videos
(``ForwardContext.num_videos``, MatConvNet's ``net.meta.curBatchSize``), run the 3D op
over (T, H, W), and reshape back to ``(V*T') x C' x H' x W'``.

* Conv3D filters are ``H x W x T x Cin x Cout``, biases ``Cout`` elements.
* pad is ``[top bottom left right front back]``, stride ``[sy sx st]``.
* Pooling3D is always MAX pooling (whatever its ``method`` says), ``poolSize [ph pw pt]``;
  padding is ignored (``pad_before + pad_after < pool size``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from matconv_port.errors import ShapeError
from matconv_port.layers._padding import pad6, pad_input_3d, stride_n
from matconv_port.layers.base import ForwardContext, MatConvNetLayer, Shape
from matconv_port.layers.registry import register_layer


def items_to_clips(x: torch.Tensor, num_videos: int, layer: str) -> torch.Tensor:
    """``(V*T) x C x H x W`` -> ``V x C x T x H x W`` (frames fastest in the item dim)."""
    n, c, h, w = x.shape
    if num_videos <= 0 or n % num_videos:
        raise ShapeError(f"layer {layer!r}: {n} items are not a whole number of frames for {num_videos} videos")
    # -1 (not num_videos) keeps the number of videos dynamic when traced for ONNX
    return x.reshape(-1, n // num_videos, c, h, w).transpose(1, 2)


def _frames(n: int, num_videos: int, layer: str) -> int:
    """Frames per video of ``n`` items (as :func:`items_to_clips` checks)."""
    if num_videos <= 0 or n % num_videos:
        raise ShapeError(f"layer {layer!r}: {n} items are not a whole number of frames for {num_videos} videos")
    return n // num_videos


def clips_to_items(y: torch.Tensor) -> torch.Tensor:
    """``V x C x T x H x W`` -> ``(V*T) x C x H x W``."""
    _, c, _, h, w = y.shape
    return y.transpose(1, 2).reshape(-1, c, h, w)


def _3d_args(pad: tuple, stride: tuple) -> tuple[tuple[int, int, int], tuple[int, int, int] | None]:
    """torch (T, H, W) stride, and symmetric padding if PyTorch can take it directly."""
    top, bottom, left, right, front, back = pad
    sym = (front, top, left) if (top == bottom and left == right and front == back) else None
    return (stride[2], stride[0], stride[1]), sym


@register_layer("dagnn.Conv3D")
class Conv3D(MatConvNetLayer):
    param_layouts = ("filter3d", "vector")

    def __init__(self, spec):
        super().__init__(spec)
        self.pad = pad6(self.block_int_list("pad", 0))
        self.stride = stride_n(self.block_int_list("stride", 1), 3)
        self.has_bias = bool(self.block.get("hasBias", len(spec.params) > 1)) and len(spec.params) > 1
        self.torch_stride, self._sym = _3d_args(self.pad, self.stride)

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        n, c, h, w = input_shapes[0]
        t = _frames(n, ctx.num_videos, self.layer_name)
        cout, cin, kt, kh, kw = param_shapes[0]
        if c != cin:
            raise ShapeError(f"layer {self.layer_name!r}: input has {c} channels, the 3D filter expects {cin}")
        if self.has_bias and int(np.prod(param_shapes[1])) != cout:
            raise ShapeError(f"layer {self.layer_name!r}: {int(np.prod(param_shapes[1]))} biases for {cout} filters")
        oh, ow, ot = self.window_sizes(input_shapes, (h, w, t), (kh, kw, kt), f"the {kh}x{kw}x{kt} 3D filter")
        return [(ctx.num_videos * ot, cout, oh, ow)]

    def forward(self, inputs, params, ctx: ForwardContext):
        x = items_to_clips(inputs[0], ctx.num_videos, self.layer_name)
        w = params[0]
        if x.shape[1] != w.shape[1]:
            raise ShapeError(f"layer {self.layer_name!r}: input has {x.shape[1]} channels, the 3D filter expects {w.shape[1]}")
        b = params[1] if self.has_bias else None
        if self._sym is not None:
            y = F.conv3d(x, w, b, self.torch_stride, self._sym)
        else:
            y = F.conv3d(pad_input_3d(x, self.pad), w, b, self.torch_stride)
        return [clips_to_items(y)]


@register_layer("dagnn.Pooling3D")
class Pooling3D(MatConvNetLayer):
    def __init__(self, spec):
        super().__init__(spec)
        ph, pw, pt = stride_n(self.block_int_list("poolSize", 1), 3)
        self.kernel = (pt, ph, pw)
        self.pad = pad6(self.block_int_list("pad", 0))
        self.stride = stride_n(self.block_int_list("stride", 1), 3)
        self.torch_stride, self._sym = _3d_args(self.pad, self.stride)
        t, b, l, r, f, k = self.pad
        if t + b >= ph or l + r >= pw or f + k >= pt:
            raise ShapeError(f"layer {self.layer_name!r}: 3D pool pad {list(self.pad)} too large for pool size {[ph, pw, pt]}")

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        n, c, h, w = input_shapes[0]
        t = _frames(n, ctx.num_videos, self.layer_name)
        kt, kh, kw = self.kernel
        if t < kt - self.pad[4] - self.pad[5]:
            raise ShapeError(f"layer {self.layer_name!r}: {t} frames per video, temporal pool size is {kt}")
        oh, ow, ot = self.window_sizes(input_shapes, (h, w, t), (kh, kw, kt), f"the {kh}x{kw}x{kt} 3D pool")
        return [(ctx.num_videos * ot, c, oh, ow)]

    def forward(self, inputs, params, ctx: ForwardContext):
        x = items_to_clips(inputs[0], ctx.num_videos, self.layer_name)
        if x.shape[2] < self.kernel[0] - self.pad[4] - self.pad[5]:
            raise ShapeError(f"layer {self.layer_name!r}: {x.shape[2]} frames per video, temporal pool size is {self.kernel[0]}")
        if self._sym is not None and all(2 * p <= k for p, k in zip(self._sym, self.kernel)):
            y = F.max_pool3d(x, self.kernel, self.torch_stride, self._sym)
        else:
            y = F.max_pool3d(pad_input_3d(x, self.pad, float("-inf")), self.kernel, self.torch_stride)
        return [clips_to_items(y)]
