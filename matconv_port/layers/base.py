"""Base class of every layer implementation, and the per-call context."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from matconv_port.errors import ShapeError
from matconv_port.layout import mcn_size
from matconv_port.netspec import LayerSpec, as_float_list

#: a tensor shape, ``N x C x H x W`` for activations
Shape = tuple[int, ...]


def window_outputs(sizes: Sequence[int], pad: Sequence[int], kernels: Sequence[int], strides: Sequence[int]) -> tuple[int, ...]:
    """MatConvNet's output size of a sliding window along each dimension (H, W[, T]):
    ``floor((X + pad_before + pad_after - kernel) / stride) + 1``, with ``pad`` in
    MatConvNet's order ``[top bottom left right (front back)]``, ``strides``
    ``[sy sx (st)]`` and ``kernels`` the effective extents (dilation included); 0 or
    less where the window does not fit."""
    return tuple((x + pad[2 * i] + pad[2 * i + 1] - k) // s + 1
                 for i, (x, k, s) in enumerate(zip(sizes, kernels, strides)))


@dataclass
class ForwardContext:
    """What MatConvNet keeps in ``net.meta`` / ``net.mode`` during ``eval``.

    ``num_videos`` is MatConvNet's ``net.meta.curBatchSize``: the 4th dim of an
    activation holds ``num_videos x frames`` items, frames fastest
    (item = video * frames + frame). 3D layers and losses use it.
    """

    num_videos: int
    training: bool = False
    #: "fast": emulate MatConvNet's CPU LRN pow approximation; "exact": true pow
    lrn_mode: str = "exact"
    #: training: batch moments ``C x 2`` = [mean, sigma] computed by each BatchNorm layer
    batch_moments: dict = field(default_factory=dict)
    #: set by the executor when the running layer's inputs are not needed afterwards
    #: (an element-wise layer may then compute in place, as MatConvNet's conserveMemory)
    overwrite_input: bool = False


class MatConvNetLayer(nn.Module):
    """One MatConvNet layer (a DagNN block).

    Subclasses set :attr:`param_layouts` (one entry of
    :data:`~matconv_port.layers.registry.PARAM_LAYOUTS` per param slot) and implement
    :meth:`forward`, which receives the input vars, the layer's params (torch
    layout) and the :class:`ForwardContext`, and returns the output vars. Activations
    are ``N x C x H x W`` tensors (MatConvNet's ``H x W x C x N``).
    """

    mcn_types: ClassVar[tuple[str, ...]] = ()
    param_layouts: ClassVar[tuple[str, ...]] = ()
    #: a layer whose inputs include a label var (losses, error counters)
    needs_label: ClassVar[bool] = False

    def __init__(self, spec: LayerSpec):
        super().__init__()
        self.layer_name = spec.name
        self.mcn_type = spec.type
        self.block = dict(spec.block)

    # ---------------------------------------------------------------- helpers
    def block_list(self, key: str, default: Any, n: int | None = None) -> list[float]:
        """A numeric block property as a list of floats; a scalar is repeated to ``n``."""
        value = self.block.get(key, default)
        if value is None or (hasattr(value, "__len__") and not isinstance(value, str) and len(value) == 0):
            value = default
        vals = as_float_list(value)
        if n is not None and len(vals) == 1:
            vals = vals * n
        return vals

    def block_int_list(self, key: str, default: Any, n: int | None = None) -> list[int]:
        return [int(round(v)) for v in self.block_list(key, default, n)]

    def block_float(self, key: str, default: float) -> float:
        vals = self.block_list(key, default)
        return float(vals[0]) if vals else float(default)

    def param_layout(self, slot: int) -> str:
        return self.param_layouts[slot] if slot < len(self.param_layouts) else "raw"

    def forward(self, inputs: list[torch.Tensor], params: list[torch.Tensor], ctx: ForwardContext) -> list[torch.Tensor]:
        raise NotImplementedError

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape] | None:
        """The ``N x C x H x W`` shapes :meth:`forward` would return for inputs and params
        of these shapes, computed without running it, raising
        :class:`~matconv_port.errors.ShapeError` (naming the layer) where
        :meth:`forward` would fail on shapes. None (the default): not known; the shape
        check then runs :meth:`forward` on ``meta`` tensors (slower: the first such
        call imports much of torch's compiler stack)."""
        return None

    def input_shape_hint(self, slot: int, items: int) -> Shape | None:
        """The ``N x C x H x W`` shape a shape check should give an input var that feeds
        input ``slot`` of this layer when it is not an image (e.g. ROIs, affine
        parameters), for a batch of ``items``; None (the default): an image."""
        return None

    def window_sizes(self, input_shapes: list[Shape], sizes: Sequence[int], kernels: Sequence[int],
                     what: str) -> tuple[int, ...]:
        """:func:`window_outputs` with this layer's ``pad`` and ``stride``; the shape
        check's error, naming ``what`` (e.g. ``"the 3x3 filter"``), where it does not fit."""
        out = window_outputs(sizes, self.pad, kernels, self.stride)
        if min(out) <= 0:
            raise self.shape_error(input_shapes, f"{what} (pad {list(self.pad)}) does not fit "
                                                 f"{'x'.join(str(v) for v in sizes)}")
        return out

    def shape_error(self, input_shapes: list[Shape], detail: str) -> ShapeError:
        """The shape check's error for inputs of ``input_shapes`` (sizes in HxWxCxN)."""
        sizes = ", ".join(mcn_size(sh) for sh in input_shapes)
        return ShapeError(f"layer {self.layer_name!r} ({self.mcn_type}) cannot take input {sizes} (HxWxCxN): {detail}")


class SameShapeLayer(MatConvNetLayer):
    """A layer whose single output has the shape of its first input (element-wise or
    channel-wise: ReLU, Sigmoid, SoftMax, DropOut, LRN)."""

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        return [tuple(input_shapes[0])]

    def extra_repr(self) -> str:
        return f"{self.layer_name!r}, {self.mcn_type}"
