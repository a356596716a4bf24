"""MatConvNet padding/stride conventions shared by conv and pooling layers.

MatConvNet 2D pad is ``[top bottom left right]`` (a scalar means all four), stride
``[sy sx]`` (a scalar means both); 3D layers (MexConv3D) use pad
``[top bottom left right front back]`` and stride ``[sy sx st]``. Output size is
``floor((X + pad_before + pad_after - k) / stride) + 1`` in every dimension.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def pad4(values: list[int]) -> tuple[int, int, int, int]:
    """MatConvNet pad list -> (top, bottom, left, right)."""
    if len(values) == 1:
        return (values[0],) * 4
    if len(values) == 2:  # not written by MatConvNet itself, but accepted: [py px]
        return (values[0], values[0], values[1], values[1])
    return tuple(values[:4])  # type: ignore[return-value]


def pad6(values: list[int]) -> tuple[int, int, int, int, int, int]:
    """MexConv3D pad list -> (top, bottom, left, right, front, back)."""
    if len(values) == 1:
        return (values[0],) * 6
    if len(values) == 3:
        return (values[0], values[0], values[1], values[1], values[2], values[2])
    return tuple(values[:6])  # type: ignore[return-value]


def stride_n(values: list[int], n: int) -> tuple[int, ...]:
    return tuple(values) * n if len(values) == 1 else tuple(values[:n])


def pad_input_2d(x: torch.Tensor, pad: tuple[int, int, int, int], value: float = 0.0) -> torch.Tensor:
    top, bottom, left, right = pad
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def pad_input_3d(x: torch.Tensor, pad: tuple[int, int, int, int, int, int], value: float = 0.0) -> torch.Tensor:
    """``x``: N x C x T x H x W."""
    top, bottom, left, right, front, back = pad
    if not any(pad):
        return x
    return F.pad(x, (left, right, top, bottom, front, back), value=value)


def symmetric_2d(pad: tuple[int, int, int, int]) -> tuple[int, int] | None:
    """(py, px) when the pad can be handed to PyTorch's symmetric ``padding``, else None."""
    top, bottom, left, right = pad
    return (top, left) if top == bottom and left == right else None
