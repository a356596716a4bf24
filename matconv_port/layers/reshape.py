"""Layers that only re-arrange values, from mcnExtraLayers (``albanie/mcnExtraLayers``):
``dagnn.Flatten``, ``dagnn.Reshape`` and ``dagnn.Permute``.

All three work in MATLAB's ``H x W x C x N`` index order and column-major memory order
(H fastest), as the originals do; activations here are ``N x C x H x W``. Within one
item, MATLAB's column-major order of ``H x W x C`` is the row-major order of
``C x W x H``, which is what :func:`_mcn_flat` / :func:`_from_mcn_flat` use.

* ``dagnn.Flatten`` (``matlab/+dagnn/Flatten.m``, ``matlab/vl_nnflatten.m``): the output
  is ``1 x 1 x 1 x N`` with dimension ``axis`` (1, 2 or 3; default 3) holding the
  ``H*W*C`` values of each item, i.e. ``reshape(x, outputSize)``. ``firstAxis`` is a
  saved property that only ``getOutputSizes`` reads; ``forward`` (``vl_nnflatten``)
  ignores it, and so does this port.
* ``dagnn.Reshape`` (``matlab/+dagnn/Reshape.m``, ``matlab/vl_nnreshape.m``):
  ``reshape(x, shape{1}, shape{2}, shape{3}, N)`` per item; ``shape`` is a 1x3 cell in
  which ``[]`` is computed from the others, or Caffe style numbers where ``0`` keeps
  that input dimension and ``-1`` is computed (a 2-element numeric shape gets ``[]``
  as its third entry). The batch size is kept.
* ``dagnn.Permute`` (``matlab/+dagnn/Permute.m``): ``permute(x, order)`` with ``order`` a
  permutation of the MATLAB dims 1..4 (H, W, C, N); dims beyond 4 must stay in place
  (activations are 4-D here).
"""
from __future__ import annotations

import math

import torch

from matconv_port.errors import ModelFormatError
from matconv_port.layers.base import ForwardContext, MatConvNetLayer, Shape
from matconv_port.layers.registry import register_layer


def _mcn_flat(x: torch.Tensor) -> torch.Tensor:
    """``N x C x H x W`` -> ``N x (H*W*C)`` in MATLAB's column-major order of each item."""
    return x.permute(0, 1, 3, 2).reshape(x.shape[0], -1)


def _from_mcn_flat(flat: torch.Tensor, h: int, w: int, c: int) -> torch.Tensor:
    """Inverse of :func:`_mcn_flat` for MATLAB sizes ``h x w x c``: ``N x c x h x w``."""
    return flat.reshape(flat.shape[0], c, w, h).permute(0, 1, 3, 2)


@register_layer("dagnn.Flatten")
class Flatten(MatConvNetLayer):
    def __init__(self, spec):
        super().__init__(spec)
        axis = self.block_list("axis", 3)
        if len(axis) != 1 or axis[0] not in (1.0, 2.0, 3.0):
            raise ModelFormatError(f"layer {self.layer_name!r} (dagnn.Flatten): axis must be 1, 2 or 3, got {axis}")
        self.axis = int(axis[0])

    def _out(self, n: int, total: int) -> tuple[int, int, int, int]:
        mcn = [1, 1, 1]
        mcn[self.axis - 1] = total
        return (n, mcn[2], mcn[0], mcn[1])

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        n, c, h, w = input_shapes[0]
        return [self._out(n, c * h * w)]

    def forward(self, inputs, params, ctx: ForwardContext):
        x = inputs[0]
        flat = _mcn_flat(x)
        return [flat.reshape(self._out(x.shape[0], flat.shape[1]))]

    def extra_repr(self) -> str:
        return f"{self.layer_name!r}, axis={self.axis}"


def _reshape_entries(value, name: str) -> list:
    """``shape`` as saved (a cell -> list whose entries are numbers or ``[]``; a numeric
    array -> list of floats or a float) as a list of ``int`` / ``None`` (= ``[]``)
    plus whether it is Caffe style (0 = keep, -1 = infer)."""
    items = value if isinstance(value, list) else [value]
    out = []
    for v in items:
        if isinstance(v, list) and len(v) == 0:
            out.append(None)
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer():
            out.append(int(v))
        elif isinstance(v, list) and len(v) == 1 and isinstance(v[0], (int, float)):
            out.append(int(v[0]))
        else:
            raise ModelFormatError(f"layer {name!r} (dagnn.Reshape): shape entry {v!r} is not an integer or []")
    return out


@register_layer("dagnn.Reshape")
class Reshape(MatConvNetLayer):
    def __init__(self, spec):
        super().__init__(spec)
        entries = _reshape_entries(self.block.get("shape", []), self.layer_name)
        numeric = all(e is not None for e in entries)
        # vl_nnreshape's Caffe conventions apply to a numeric shape; a cell with 0 or -1
        # cannot run in MATLAB, so reading 0 / -1 as Caffe style changes nothing that runs
        if numeric and len(entries) == 2:
            entries.append(None)
        if sum(e == -1 for e in entries) > 1:
            raise ModelFormatError(f"layer {self.layer_name!r} (dagnn.Reshape): more than one -1 in shape {entries}")
        entries = [None if e == -1 else e for e in entries]
        if len(entries) != 3 or sum(e is None for e in entries) > 1 or any(e is not None and e < 0 for e in entries):
            raise ModelFormatError(f"layer {self.layer_name!r} (dagnn.Reshape): shape must give 3 sizes with at most "
                                   f"one [] (or -1), got {self.block.get('shape')!r}")
        #: MATLAB sizes H', W', C': int, None (computed) or 0 (keep the input's)
        self.shape = entries

    def _target(self, input_shapes: list[Shape], h: int, w: int, c: int) -> tuple[int, int, int]:
        dims = [h, w, c]
        sizes = [dims[k] if e == 0 else e for k, e in enumerate(self.shape)]
        total = h * w * c
        if None in sizes:
            known = math.prod(s for s in sizes if s is not None)
            if known == 0 or total % known:
                raise self.shape_error(input_shapes, f"{total} values per item cannot be reshaped to {self._show(sizes)}")
            sizes[sizes.index(None)] = total // known
        if math.prod(sizes) != total:
            raise self.shape_error(input_shapes, f"{total} values per item cannot be reshaped to {self._show(sizes)}")
        return sizes[0], sizes[1], sizes[2]

    @staticmethod
    def _show(sizes) -> str:
        return "x".join("[]" if s is None else str(s) for s in sizes)

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        n, c, h, w = input_shapes[0]
        h2, w2, c2 = self._target(input_shapes, h, w, c)
        return [(n, c2, h2, w2)]

    def forward(self, inputs, params, ctx: ForwardContext):
        x = inputs[0]
        n, c, h, w = x.shape
        h2, w2, c2 = self._target([tuple(x.shape)], h, w, c)
        return [_from_mcn_flat(_mcn_flat(x), h2, w2, c2)]

    def extra_repr(self) -> str:
        return f"{self.layer_name!r}, shape={self._show(self.shape)}"


#: MATLAB dim (0-based: H, W, C, N) of each torch dim (N, C, H, W), and back
_TORCH_TO_MCN = (3, 2, 0, 1)
_MCN_TO_TORCH = (2, 3, 1, 0)


@register_layer("dagnn.Permute")
class Permute(MatConvNetLayer):
    def __init__(self, spec):
        super().__init__(spec)
        order = self.block_list("order", [])
        ok = all(float(v).is_integer() for v in order)
        order = [int(v) for v in order] if ok else []
        extra_ok = all(v == k for k, v in enumerate(order[4:], start=5))
        if len(order) < 4 or sorted(order[:4]) != [1, 2, 3, 4] or not extra_ok:
            raise ModelFormatError(f"layer {self.layer_name!r} (dagnn.Permute): order must permute the dims 1..4 "
                                   f"(H W C N), got {self.block.get('order')!r}")
        self.order = [v - 1 for v in order[:4]]  # output MATLAB dim k takes input MATLAB dim order[k]

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        s = input_shapes[0]
        mcn = [s[_MCN_TO_TORCH[k]] for k in range(4)]  # H W C N
        out = [mcn[k] for k in self.order]
        return [(out[3], out[2], out[0], out[1])]

    def forward(self, inputs, params, ctx: ForwardContext):
        x = inputs[0]
        mcn = x.permute(*_MCN_TO_TORCH)  # H x W x C x N view
        y = mcn.permute(*self.order)
        return [y.permute(*_TORCH_TO_MCN).contiguous()]

    def extra_repr(self) -> str:
        return f"{self.layer_name!r}, order={[k + 1 for k in self.order]}"
