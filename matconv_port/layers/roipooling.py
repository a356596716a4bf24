"""``dagnn.ROIPooling`` (stock MatConvNet 1.0-beta25: ``matlab/+dagnn/ROIPooling.m``,
``matlab/src/vl_nnroipool.cu``, ``matlab/src/bits/nnroipooling.cu``, CPU path).

Inputs: the feature map ``H x W x C x N`` and the ROIs, ``5 x R`` values (any shape
with ``5R`` elements, read in MATLAB's column-major order; as a tensor: a 4-D tensor is
that MatConvNet array in this project's ``N x C x H x W`` layout, e.g.
``from_matconvnet_layout(rois)``, a 2-D tensor is ``R x 5`` rows): ``[t u1 v1 u2 v2]`` = the
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


#: ROIs handled together (bounds the temporaries: chunk x C x H x W for avg, chunk x pw x C x H for max)
_ROI_CHUNK = 16


def _range_max_table(t: torch.Tensor) -> torch.Tensor:
    """Sparse table along dim 0 (length L): ``T[k, i] = max(t[i : i + 2^k])`` (``-inf``
    past the end), so any range max is the max of two entries."""
    levels = [t]
    span = 1
    while 2 * span <= t.shape[0]:
        prev = levels[-1]
        nxt = torch.full_like(prev, float("-inf"))
        nxt[: t.shape[0] - span] = torch.maximum(prev[: t.shape[0] - span], prev[span:])
        levels.append(nxt)
        span *= 2
    return torch.stack(levels)


def _range_max(table: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
    """``max(t[lo:hi])`` for index arrays lo, hi (non-empty ranges; others give garbage,
    masked by the caller); ``extra`` index the dims after the range dim."""
    length = (hi - lo).clamp(min=1)
    k = torch.floor(torch.log2(length.to(torch.float64))).to(torch.long)
    k = k.clamp(max=table.shape[0] - 1)
    last = table.shape[1] - 1
    a = table[(k, lo.clamp(0, last)) + extra]
    b = table[(k, (hi - (1 << k)).clamp(0, last)) + extra]
    return torch.maximum(a, b)


def roi_pool(x: torch.Tensor, rois: torch.Tensor, subdivisions, transform, method: str) -> torch.Tensor:
    """vl_nnroipool forward: ``R x C x ph x pw``, ROIs grouped by image, in chunks.
    max: exact range maxima (a sparse table along W, then a gather of each bin's rows); avg: bin sums as
    mask products, times ``1 / count`` in the data type."""
    n, ch, height, width = x.shape
    ph, pw = subdivisions
    dtype = np.dtype(np.float64) if x.dtype == torch.float64 else np.dtype(np.float32)
    rows = roi_rows(rois)
    image, h_lo, h_hi, w_lo, w_hi = roi_bins(rows, dtype, transform, subdivisions, height, width, n)
    dev = x.device
    t = {k: torch.as_tensor(v, device=dev) for k, v in (("hl", h_lo), ("hh", h_hi), ("wl", w_lo), ("wh", w_hi))}
    # bins with content: ph x pw per ROI
    valid = ((t["hh"] > t["hl"])[:, :, None] & (t["wh"] > t["wl"])[:, None, :])
    out = x.new_zeros((rows.shape[0], ch, ph, pw))
    zero = x.new_zeros(())
    for img in np.unique(image):
        members = np.nonzero(image == img)[0]
        xi = x[int(img)]  # C x H x W
        if method == "max":
            table_w = _range_max_table(xi.permute(2, 0, 1))  # K x W x C x H
        for s in range(0, members.size, _ROI_CHUNK):
            idx = torch.as_tensor(members[s:s + _ROI_CHUNK], device=dev)
            r = idx.numel()
            hl, hh, wl, wh = t["hl"][idx], t["hh"][idx], t["wl"][idx], t["wh"][idx]
            if method == "avg":
                hs = torch.arange(height, device=dev)
                ws = torch.arange(width, device=dev)
                mh = ((hs >= hl[..., None]) & (hs < hh[..., None])).to(x.dtype)  # r x ph x H
                mw = ((ws >= wl[..., None]) & (ws < wh[..., None])).to(x.dtype)  # r x pw x W
                sums = torch.matmul(torch.matmul(mh[:, None], xi[None]), mw[:, None].transpose(2, 3))  # r x C x ph x pw
                count = (hh - hl).clamp(min=0)[:, :, None] * (wh - wl).clamp(min=0)[:, None, :]
                scale = torch.where(count > 0, 1 / count.clamp(min=1).to(x.dtype), zero)
                block = sums * scale[:, None]
            else:
                cols = _range_max(table_w, wl, wh)  # r x pw x C x H
                # rows of each bin: gather hl, hl+1, ... (repeating the last row) and take the max
                span = int((hh - hl).max().clamp(min=1))
                rows_h = torch.minimum(hl[..., None] + torch.arange(span, device=dev), (hh[..., None] - 1))
                rows_h = rows_h.clamp(0, height - 1)  # r x ph x span
                rr = torch.arange(r, device=dev)[:, None, None]
                block = cols[rr, :, :, rows_h].amax(dim=2)  # r x ph x pw x C
                block = block.permute(0, 3, 1, 2)
            out[idx] = torch.where(valid[idx][:, None], block, zero)
    return out


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
