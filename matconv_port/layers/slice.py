"""``dagnn.Slice`` from mcnExtraLayers (``albanie/mcnExtraLayers``,
``matlab/+dagnn/Slice.m`` and ``matlab/vl_nnslice.m``): one input cut along one
dimension into several outputs, the inverse of ``dagnn.Concat``.

Saved properties: ``dim`` (3 = channels, 4 = batch items; ``vl_nnslice`` refuses any
other) and ``slicePoint`` (default 3), a row of K indices giving K + 1 outputs:
output ``k`` holds MATLAB indices ``slicePoint(k-1)+1 : slicePoint(k)`` along ``dim``
(``slicePoint(0) = 0``, ``slicePoint(K+1) = size(X, dim)``). As in MATLAB, a range whose
end is before its start gives an empty output (0 along ``dim``), e.g. a slice point
equal to the size; a range that reaches past the input (a point larger than the size)
or starts below 1 is refused naming the layer, as ``subsref`` fails there. The layer
must have K + 1 outputs. ``Slice.getOutputSizes`` is copied from ``Concat`` (it sums
sizes) and is not what ``forward`` computes; :meth:`Slice.output_shapes` follows
``forward``.

A second, unrelated class of the same name: ``dagnn.Slice`` of Sunbaoli/DSR (depth
super-resolution; ``code/+dagnn/Slice.m``, identical in ``code/edgeClassSRX8``), saved with
the properties ``dim`` and ``thres`` (default 0.2) and no ``slicePoint``. Its ``forward``
is ``inputs{1}(:,:,2,:) > thres``: channel 2 of the input (the edge probability after a
SoftMax) thresholded into a logical ``H x W x 1 x N`` map, ``dim`` unused; its
``backward`` returns a zero derivative. Here the map is 0/1 in the input's dtype (MATLAB
``cat`` of a logical with singles gives singles, which is how DSR uses it) and carries no
gradient. Which class a block is: ``thres`` without ``slicePoint`` = DSR's, otherwise
mcnExtraLayers'; a block with both is refused.
"""
from __future__ import annotations

import torch

from matconv_port.errors import ModelFormatError
from matconv_port.layers.base import ForwardContext, MatConvNetLayer, Shape
from matconv_port.layers.registry import register_layer

#: torch dim of MATLAB dims 3 (C) and 4 (N)
_TORCH_DIM = {3: 1, 4: 0}


@register_layer("dagnn.Slice")
class Slice(MatConvNetLayer):
    def __init__(self, spec):
        super().__init__(spec)
        where = f"layer {self.layer_name!r} (dagnn.Slice)"
        if "thres" in self.block and "slicePoint" in self.block:
            raise ModelFormatError(f"{where}: has both 'thres' (Sunbaoli/DSR's Slice) and 'slicePoint' "
                                   "(mcnExtraLayers' Slice); no known dagnn.Slice has both")
        #: "mcnextra" (albanie/mcnExtraLayers) or "dsr" (Sunbaoli/DSR's thresholding Slice)
        self.variant = "dsr" if "thres" in self.block else "mcnextra"
        if self.variant == "dsr":
            thres = self.block_list("thres", 0.2)
            if len(thres) != 1:
                raise ModelFormatError(f"{where}: thres must be one number, got {thres}")
            self.thres = float(thres[0])
            if len(spec.outputs) != 1:
                raise ModelFormatError(f"{where}: Sunbaoli/DSR's Slice (thres) has one output, "
                                       f"the layer has {len(spec.outputs)}")
            return
        dim = self.block_list("dim", 3)
        if len(dim) != 1 or dim[0] not in (3.0, 4.0):
            raise ModelFormatError(f"{where}: dim must be 3 (channels) or 4 (batch), got {dim} "
                                   "(vl_nnslice slices only along channels or batches)")
        self.dim = int(dim[0])
        raw = self.block.get("slicePoint", 3)
        points = [] if raw is None or (isinstance(raw, (list, tuple)) and not raw) else self.block_list("slicePoint", 3)
        if not points:
            raise ModelFormatError(f"{where}: slicePoint is empty (at least one slice point must be given)")
        if not all(float(p).is_integer() for p in points):
            raise ModelFormatError(f"{where}: slicePoint {points} must be integers")
        self.points = [int(p) for p in points]
        if len(spec.outputs) != len(self.points) + 1:
            raise ModelFormatError(f"{where}: {len(self.points)} slice points give {len(self.points) + 1} outputs, "
                                   f"but the layer has {len(spec.outputs)}")

    def _ranges(self, size: int, input_shapes: list[Shape]) -> list[tuple[int, int]]:
        """``(start, length)`` (0-based) of each output along the sliced dim."""
        ends = self.points + [size]
        starts = [0] + self.points  # MATLAB start - 1
        out = []
        for s, e in zip(starts, ends):
            if e <= s:  # s+1 : e is empty in MATLAB
                out.append((0, 0))
                continue
            if s < 0 or e > size:
                raise self.shape_error(input_shapes, f"slice {s + 1}:{e} along dim {self.dim} is outside 1:{size} "
                                                     f"(slicePoint {self.points})")
            out.append((s, e - s))
        return out

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        shape = list(input_shapes[0])
        if self.variant == "dsr":
            if shape[1] < 2:
                raise self.shape_error(input_shapes, "Sunbaoli/DSR's Slice reads channel 2 (x(:,:,2,:))")
            return [(shape[0], 1, shape[2], shape[3])]
        d = _TORCH_DIM[self.dim]
        outs = []
        for _, length in self._ranges(shape[d], input_shapes):
            sh = list(shape)
            sh[d] = length
            outs.append(tuple(sh))
        return outs

    def forward(self, inputs, params, ctx: ForwardContext):
        x = inputs[0]
        if self.variant == "dsr":
            if x.shape[1] < 2:
                raise self.shape_error([tuple(x.shape)], "Sunbaoli/DSR's Slice reads channel 2 (x(:,:,2,:))")
            return [(x[:, 1:2].detach() > self.thres).to(x.dtype)]
        d = _TORCH_DIM[self.dim]
        return [x.narrow(d, start, length) for start, length in self._ranges(x.shape[d], [tuple(x.shape)])]

    def extra_repr(self) -> str:
        if self.variant == "dsr":
            return f"{self.layer_name!r}, x(:,:,2,:) > {self.thres} (Sunbaoli/DSR)"
        return f"{self.layer_name!r}, dim={self.dim}, slicePoint={self.points}"
