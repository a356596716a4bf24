"""MatConvNet <-> PyTorch array layouts.

MatConvNet stores activations as ``H x W x C x N`` MATLAB (column-major) arrays;
PyTorch uses ``N x C x H x W``. scipy/h5py readers used here keep MATLAB's index
order (``a[h, w, c, n]``), so the conversion is a pure axis permutation.

MATLAB drops TRAILING singleton dimensions: a single image ``H x W x C x 1`` is
saved as ``H x W x C``, a 1x1xKxN score array keeps its 4 dims, a ``H x W`` grey
image with one item is 2-D. :func:`from_matconvnet_layout` restores them.
"""
from __future__ import annotations

import numpy as np
import torch

ArrayLike = "np.ndarray | torch.Tensor"


def _as_tensor(array) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array
    arr = np.asarray(array)
    if arr.dtype == np.float64 or arr.dtype == np.float32:
        pass
    elif arr.dtype.kind in "iub":
        arr = arr.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr))


def from_matconvnet_layout(array) -> torch.Tensor:
    """``H x W x C x N`` (MATLAB index order, trailing singletons possibly dropped)
    -> ``N x C x H x W`` contiguous tensor. dtype is kept (float32/float64)."""
    t = _as_tensor(array)
    if t.dim() > 4:
        raise ValueError(f"expected at most 4 dims (H x W x C x N), got shape {tuple(t.shape)}")
    while t.dim() < 4:
        t = t.unsqueeze(-1)
    return t.permute(3, 2, 0, 1).contiguous()


def to_matconvnet_layout(tensor) -> np.ndarray:
    """``N x C x H x W`` tensor -> ``H x W x C x N`` numpy array (MATLAB index order,
    all 4 dims kept; write it with Fortran order to get MATLAB's memory layout)."""
    t = tensor.detach().cpu() if isinstance(tensor, torch.Tensor) else torch.as_tensor(tensor)
    while t.dim() < 4:
        t = t.unsqueeze(0)
    return np.asfortranarray(t.permute(2, 3, 1, 0).numpy())


def mcn_size(shape) -> str:
    """N x C x H x W -> MatConvNet's ``HxWxCxN`` text (other ranks: joined as given)."""
    if len(shape) != 4:
        return "x".join(str(s) for s in shape)
    n, c, h, w = shape
    return f"{h}x{w}x{c}x{n}"
