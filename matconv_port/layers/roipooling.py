"""``dagnn.ROIPooling`` (stock MatConvNet 1.0-beta25: ``matlab/+dagnn/ROIPooling.m``,
``matlab/src/vl_nnroipool.cu``, ``matlab/src/bits/nnroipooling.cu``, CPU path).

Inputs: the feature map ``H x W x C x N`` and the ROIs, ``5 x R`` values (any shape
with ``5R`` elements, read in MATLAB's column-major order): ``[t u1 v1 u2 v2]`` = the
1-based image index in the batch and the 1-based (x1, y1, x2, y2) corners in IMAGE
coordinates. ``transform`` maps image to feature coordinates, ``u' = a u + c v + e``,
``v' = b u + d v + f`` with ``[a b c d e f]`` = a 2 x 3 matrix (6 values); a scalar
``s`` means ``[s 0 0 s 1-s 1-s]``, two values ``[sx sy]`` mean ``[sx 0 0 sy 1-sx 1-sy]``.
Corners are rounded half away from zero (C ``round``, computed in the data type after a
double-precision transform) and made 0-based; the image index is truncated and clamped
to ``[1, N]``. ROI height/width ``max(end - start + 1, 1)``; the ``subdivisions
[ph pw]`` bins have ``floor(i * size / p) .. ceil((i + 1) * size / p)`` (bin sizes in
the data type), clipped to the map. ``method``: ``max`` (an empty bin gives 0) or
``avg`` (sum over the bin times ``1 / count``). Output ``ph x pw x C x R``; with
``flatten`` it is reshaped (column-major) to ``1 x 1 x (ph pw C) x R``.
"""
from __future__ import annotations

import numpy as np
import torch

from matconv_port.errors import ShapeError
from matconv_port.layers.base import ForwardContext, MatConvNetLayer, Shape
from matconv_port.layers.registry import register_layer
from matconv_port.netspec import as_float_list

#: ROIs pooled together (bounds the temporary (chunk, C, H, W) gather)
_ROI_CHUNK = 16


def roi_transform(value) -> tuple[float, ...]:
    """vl_nnroipool's TRANSFORM option -> the 6 coefficients ``[a b c d e f]``."""
    vals = as_float_list(value) if value is not None else [1.0]
    if len(vals) in (1, 2):
        sx, sy = vals[0], vals[min(len(vals) - 1, 1)]
        return (sx, 0.0, 0.0, sy, 1.0 - sx, 1.0 - sy)
    if len(vals) == 6:
        return tuple(vals)
    raise ValueError(f"transform has {len(vals)} values (1, 2 or 6)")


def _c_round(a: np.ndarray) -> np.ndarray:
    """C's ``round``: half away from zero."""
    return np.sign(a) * np.floor(np.abs(a) + 0.5)


def roi_rows(rois: torch.Tensor) -> np.ndarray:
    """The ROIs as an ``R x 5`` array in MATLAB's column-major element order (any tensor
    layout of a MatConvNet array with 5R elements; 4-D tensors are N x C x H x W)."""
    t = rois.detach()
    if t.dim() == 4:  # N x C x H x W -> MATLAB's column-major order = C-order of N x C x W x H
        t = t.permute(0, 1, 3, 2)
    flat = t.reshape(-1).cpu().numpy()
    return flat.reshape(-1, 5)


def roi_bins(rows: np.ndarray, dtype: np.dtype, transform, subdivisions, height: int, width: int, size: int):
    """Per ROI: the image index (0-based) and the [start, end) bin edges along H (R x ph) and
    W (R x pw), computed as nnroipooling.cu does (in ``dtype`` = the data type)."""
    rows = rows.astype(dtype)
    a, b, c, d, e, f = transform
    # transform coefficients are doubles: the products are formed in double, stored in the data type
    r64 = rows.astype(np.float64)
    u1 = (a * r64[:, 1] + c * r64[:, 2] + e).astype(dtype)
    v1 = (b * r64[:, 1] + d * r64[:, 2] + f).astype(dtype)
    u2 = (a * r64[:, 3] + c * r64[:, 4] + e).astype(dtype)
    v2 = (b * r64[:, 3] + d * r64[:, 4] + f).astype(dtype)
    image = np.trunc(rows[:, 0].astype(np.float64)).astype(np.int64)
    image = np.clip(image - 1, 0, size - 1)
    start_h = _c_round(v1).astype(np.int64) - 1
    start_w = _c_round(u1).astype(np.int64) - 1
    end_h = _c_round(v2).astype(np.int64) - 1
    end_w = _c_round(u2).astype(np.int64) - 1
    roi_h = np.maximum(end_h - start_h + 1, 1)
    roi_w = np.maximum(end_w - start_w + 1, 1)
    ph, pw = subdivisions
    bin_h = (roi_h.astype(np.float64) / ph).astype(dtype)
    bin_w = (roi_w.astype(np.float64) / pw).astype(dtype)

    def edges(bins, n, start, limit):
        i = np.arange(n, dtype=dtype)
        lo = np.floor(i[None, :] * bins[:, None]).astype(np.int64)
        hi = np.ceil((i[None, :] + dtype.type(1)) * bins[:, None]).astype(np.int64)
        lo = np.clip(lo + start[:, None], 0, limit)
        hi = np.clip(hi + start[:, None], 0, limit)
        return lo, hi

    h_lo, h_hi = edges(bin_h, ph, start_h, height)
    w_lo, w_hi = edges(bin_w, pw, start_w, width)
    return image, h_lo, h_hi, w_lo, w_hi


def roi_pool(x: torch.Tensor, rois: torch.Tensor, subdivisions, transform, method: str) -> torch.Tensor:
    """vl_nnroipool forward: ``R x C x ph x pw``."""
    n, ch, height, width = x.shape
    ph, pw = subdivisions
    dtype = np.dtype(np.float64) if x.dtype == torch.float64 else np.dtype(np.float32)
    rows = roi_rows(rois)
    image, h_lo, h_hi, w_lo, w_hi = roi_bins(rows, dtype, transform, subdivisions, height, width, n)
    dev = x.device
    hs = torch.arange(height, device=dev)
    ws = torch.arange(width, device=dev)
    # bin masks: R x ph x H and R x pw x W
    mh = (hs >= torch.as_tensor(h_lo, device=dev)[..., None]) & (hs < torch.as_tensor(h_hi, device=dev)[..., None])
    mw = (ws >= torch.as_tensor(w_lo, device=dev)[..., None]) & (ws < torch.as_tensor(w_hi, device=dev)[..., None])
    count = torch.as_tensor((np.maximum(h_hi - h_lo, 0)[:, :, None] * np.maximum(w_hi - w_lo, 0)[:, None, :]),
                            device=dev)  # R x ph x pw
    image_t = torch.as_tensor(image, device=dev)
    outs = []
    for s in range(0, rows.shape[0], _ROI_CHUNK):
        sl = slice(s, s + _ROI_CHUNK)
        xr = x[image_t[sl]]  # r x C x H x W
        if method == "avg":
            # sum over each bin, then times 1/count in the data type (acc_sum)
            sums = torch.einsum("rph,rchw,rqw->rcpq", mh[sl].to(x.dtype), xr, mw[sl].to(x.dtype))
            scale = torch.where(count[sl] > 0, 1.0 / count[sl].clamp(min=1).to(x.dtype),
                                torch.zeros((), dtype=x.dtype, device=dev))
            outs.append(sums * scale[:, None])
        else:
            neg = torch.tensor(float("-inf"), dtype=x.dtype, device=dev)
            cols = []
            for q in range(pw):  # max over W inside bin column q: r x C x H
                cols.append(torch.where(mw[sl, q][:, None, None, :], xr, neg).amax(dim=3))
            colmax = torch.stack(cols, dim=3)  # r x C x H x pw
            rowsl = []
            for p in range(ph):
                rowsl.append(torch.where(mh[sl, p][:, None, :, None], colmax, neg).amax(dim=2))
            m = torch.stack(rowsl, dim=2)  # r x C x ph x pw
            m = torch.where((count[sl] > 0)[:, None], m, torch.zeros((), dtype=x.dtype, device=dev))
            outs.append(m)
    if not outs:
        return x.new_zeros((0, ch, ph, pw))
    return torch.cat(outs, dim=0)


@register_layer("dagnn.ROIPooling")
class ROIPooling(MatConvNetLayer):
    def __init__(self, spec):
        super().__init__(spec)
        self.method = str(self.block.get("method") or "max").lower()
        if self.method not in ("max", "avg"):
            raise ShapeError(f"layer {self.layer_name!r} (dagnn.ROIPooling): unknown method {self.method!r} (max or avg)")
        sub = self.block_int_list("subdivisions", [6, 6])
        if len(sub) == 1:
            sub = sub * 2
        if len(sub) != 2 or min(sub) < 1:
            raise ShapeError(f"layer {self.layer_name!r} (dagnn.ROIPooling): subdivisions {sub} must be 1 or 2 "
                             f"values >= 1")
        self.subdivisions = (sub[0], sub[1])
        try:
            self.transform = roi_transform(self.block.get("transform", 1.0))
        except ValueError as exc:
            raise ShapeError(f"layer {self.layer_name!r} (dagnn.ROIPooling): {exc}") from None
        flatten = self.block.get("flatten", False)
        self.flatten = bool(as_float_list(flatten)[0]) if flatten is not None and as_float_list(flatten) else False

    def _num_rois(self, input_shapes: list[Shape]) -> int:
        if len(input_shapes) != 2:
            raise self.shape_error(input_shapes, f"ROIPooling takes 2 inputs (data, rois), got {len(input_shapes)}")
        if len(input_shapes[0]) != 4:
            raise self.shape_error(input_shapes, "the data input is not H x W x C x N")
        numel = int(np.prod(input_shapes[1]))
        if numel == 0 or numel % 5:
            raise self.shape_error(input_shapes, f"the ROIs have {numel} elements, not a positive multiple of 5 "
                                                 f"([image x1 y1 x2 y2] per ROI)")
        return numel // 5

    def input_shape_hint(self, slot: int, items: int) -> Shape | None:
        return (1, 1, 5, 1) if slot == 1 else None  # one ROI, MATLAB 5 x 1

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        r = self._num_rois(input_shapes)
        c = input_shapes[0][1]
        ph, pw = self.subdivisions
        return [(r, c * ph * pw, 1, 1)] if self.flatten else [(r, c, ph, pw)]

    def forward(self, inputs: list[torch.Tensor], params: list[torch.Tensor], ctx: ForwardContext) -> list[torch.Tensor]:
        self._num_rois([tuple(t.shape) for t in inputs])
        x, rois = inputs[0], inputs[1]
        y = roi_pool(x, rois, self.subdivisions, self.transform, self.method)
        if self.flatten:  # MATLAB reshape(y, 1, 1, [], R): ph fastest, then pw, then C
            y = y.permute(0, 1, 3, 2).reshape(y.shape[0], -1, 1, 1)
        return [y]

    def extra_repr(self) -> str:
        return (f"{self.layer_name!r}, method={self.method}, subdivisions={list(self.subdivisions)}, "
                f"transform={list(self.transform)}, flatten={self.flatten}")
