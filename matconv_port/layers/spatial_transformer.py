"""Spatial transformer layers of stock MatConvNet 1.0-beta25: ``dagnn.BilinearSampler``
(``matlab/+dagnn/BilinearSampler.m``, ``matlab/src/bits/nnbilinearsampler.cu``),
``dagnn.AffineGridGenerator`` (``matlab/+dagnn/AffineGridGenerator.m``) and
``dagnn.UniformScalingGridGenerator`` (``matlab/+dagnn/UniformScalingGridGenerator.m``).

A sampling grid is a MatConvNet array ``2 x Ho x Wo x N`` (so, in this project's
``N x C x H x W`` tensor layout, ``N x Wo x 2 x Ho``): entry 1 the vertical, entry 2 the
horizontal coordinate, both in ``[-1, 1]`` across the input image (``-1`` = first
pixel centre, ``1`` = last). The sampler maps ``y = (g + 1) / 2 * (H - 1)`` and
interpolates bilinearly; taps outside the image count as 0 (so grids that reach
outside the image fade to 0 past the last row/column). Stock's CPU code
(``forward_backward`` compares the int ``floor(y)`` with a ``size_t`` height) gives 0
for every sample point with ``y < 0`` or ``x < 0``, i.e. a grid value ``< -1``: the
half-pixel band before the first row/column that zero padding would blend is 0 too.
That is what this layer computes (the parity fixtures come from the CPU code); stock's
GPU kernel (``nnbilinearsampler_gpu.cu``, int sizes) blends that band instead, as
``torch.nn.functional.grid_sample`` does. A grid batch of ``k N`` items samples each input image
``k`` times (grid items ``k i .. k i + k - 1`` use image ``i``).

The generators build ``xi = linspace(-1, 1, Ho)``, ``yi = linspace(-1, 1, Wo)`` (a
single point is ``1``, as MATLAB's ``linspace``):

* Affine: the input holds 6 values per item, ``A = reshape(., 2, 3)``; the grid is
  ``g(c, i, j) = A(1, c) xi(i) + A(2, c) yi(j) + A(c, 3)`` (the code's ``xxyy * L``:
  note the linear part enters transposed).
* Uniform scaling: the input is ``1 x 1 x 3 x N`` = ``[s ty tx]``;
  ``g(1, i, j) = s xi(i) + ty``, ``g(2, i, j) = s yi(j) + tx``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from matconv_port.errors import ShapeError
from matconv_port.layers.base import ForwardContext, MatConvNetLayer, Shape
from matconv_port.layers.registry import register_layer


def matlab_linspace(n: int) -> np.ndarray:
    """MATLAB's ``linspace(-1, 1, n)`` (``n == 1`` gives ``[1]``)."""
    if n == 1:
        return np.array([1.0])
    return np.linspace(-1.0, 1.0, n)


def grid_to_torch(grid: torch.Tensor) -> torch.Tensor:
    """A MatConvNet grid (tensor layout ``N x Wo x 2 x Ho``) -> ``grid_sample``'s
    ``N x Ho x Wo x 2`` with (x, y) order."""
    g = grid.permute(0, 3, 1, 2)  # N x Ho x Wo x 2 (y, x)
    return g.flip(-1)


@register_layer("dagnn.BilinearSampler")
class BilinearSampler(MatConvNetLayer):
    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        if len(input_shapes) != 2 or any(len(s) != 4 for s in input_shapes):
            raise self.shape_error(input_shapes, "BilinearSampler takes 2 inputs: data H x W x C x N and a grid "
                                                 "2 x Ho x Wo x M")
        (n, c, h, w), (m, wo, two, ho) = input_shapes
        if two != 2:
            raise self.shape_error(input_shapes, f"the grid's first dimension is {two}, not 2 (y, x)")
        if n == 0 or m % n:
            raise self.shape_error(input_shapes, f"the grid has {m} items, not a multiple of the data's {n}")
        return [(m, c, ho, wo)]

    def forward(self, inputs: list[torch.Tensor], params: list[torch.Tensor], ctx: ForwardContext) -> list[torch.Tensor]:
        self.output_shapes([tuple(t.shape) for t in inputs], [], ctx)
        x, grid = inputs
        group = grid.shape[0] // x.shape[0]
        if group > 1:
            x = x.repeat_interleave(group, dim=0)
        g = grid_to_torch(grid.to(x.dtype))
        y = F.grid_sample(x, g, mode="bilinear", padding_mode="zeros", align_corners=True)
        # stock's CPU code compares the int floor(y) with a size_t height: a sample point
        # above the first row or left of the first column (y < 0 or x < 0) gives 0
        h, w = x.shape[2], x.shape[3]
        py = 0.5 * (g[..., 1] + 1.0) * (h - 1)
        px = 0.5 * (g[..., 0] + 1.0) * (w - 1)
        keep = ((py >= 0) & (px >= 0)).to(y.dtype)
        return [y * keep[:, None]]


class _GridGenerator(MatConvNetLayer):
    def __init__(self, spec):
        super().__init__(spec)
        self.ho = int(round(self.block_float("Ho", 0)))
        self.wo = int(round(self.block_float("Wo", 0)))
        if self.ho < 1 or self.wo < 1:
            raise ShapeError(f"layer {self.layer_name!r} ({self.mcn_type}): output grid size Ho x Wo = "
                             f"{self.ho} x {self.wo} is empty")
        self.register_buffer("xi", torch.from_numpy(matlab_linspace(self.ho)), persistent=False)
        self.register_buffer("yi", torch.from_numpy(matlab_linspace(self.wo)), persistent=False)

    def extra_repr(self) -> str:
        return f"{self.layer_name!r}, Ho={self.ho}, Wo={self.wo}"


@register_layer("dagnn.AffineGridGenerator")
class AffineGridGenerator(_GridGenerator):
    def input_shape_hint(self, slot: int, items: int) -> Shape | None:
        return (items, 6, 1, 1)  # 1 x 1 x 6 x N

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        s = input_shapes[0]
        if len(input_shapes) != 1 or len(s) != 4 or s[1] * s[2] * s[3] != 6:
            raise self.shape_error(input_shapes, "AffineGridGenerator takes one input of 6 values per item "
                                                 "(a 2 x 3 affine matrix)")
        return [(s[0], self.wo, 2, self.ho)]

    def forward(self, inputs: list[torch.Tensor], params: list[torch.Tensor], ctx: ForwardContext) -> list[torch.Tensor]:
        self.output_shapes([tuple(t.shape) for t in inputs], [], ctx)
        a = inputs[0]
        n = a.shape[0]
        # column-major values of each item (h fastest, then w, then c) -> A(r, c), r, c 1-based
        A = a.permute(0, 1, 3, 2).reshape(n, 3, 2).transpose(1, 2)  # n x 2 x 3: A[n, r, c]
        xi = self.xi.to(a.dtype)
        yi = self.yi.to(a.dtype)
        # g[n, c, i, j] = A(1,c) xi(i) + A(2,c) yi(j) + A(c,3)
        g = (A[:, 0, :2, None, None] * xi[None, None, :, None]
             + A[:, 1, :2, None, None] * yi[None, None, None, :]) + A[:, :2, 2, None, None]
        # MatConvNet 2 x Ho x Wo x N -> tensor layout N x Wo x 2 x Ho
        return [g.permute(0, 3, 1, 2).contiguous()]


@register_layer("dagnn.UniformScalingGridGenerator")
class UniformScalingGridGenerator(_GridGenerator):
    def input_shape_hint(self, slot: int, items: int) -> Shape | None:
        return (items, 3, 1, 1)  # 1 x 1 x 3 x N

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        s = input_shapes[0]
        if len(input_shapes) != 1 or len(s) != 4 or tuple(s[1:]) != (3, 1, 1):
            raise self.shape_error(input_shapes, "UniformScalingGridGenerator takes one 1 x 1 x 3 x N input "
                                                 "[scale ty tx]")
        return [(s[0], self.wo, 2, self.ho)]

    def forward(self, inputs: list[torch.Tensor], params: list[torch.Tensor], ctx: ForwardContext) -> list[torch.Tensor]:
        self.output_shapes([tuple(t.shape) for t in inputs], [], ctx)
        t = inputs[0]
        s, ty, tx = t[:, 0, 0, 0], t[:, 1, 0, 0], t[:, 2, 0, 0]
        xi = self.xi.to(t.dtype)
        yi = self.yi.to(t.dtype)
        n = t.shape[0]
        gy = (xi[None, :] * s[:, None] + ty[:, None])[:, :, None].expand(n, self.ho, self.wo)
        gx = (yi[None, :] * s[:, None] + tx[:, None])[:, None, :].expand(n, self.ho, self.wo)
        g = torch.stack([gy, gx], dim=1)  # n x 2 x Ho x Wo
        return [g.permute(0, 3, 1, 2).contiguous()]
