"""The mean a net subtracts from its inputs, ``meta.normalization.averageImage``: one
reading for evaluation, training, the clip API and the fusion build.

Every original script that uses it first takes ``mean(mean(avg, 1), 2)``:
``cnn_ucf101_fusion.m`` (l. 139-141, each tower's mean, then ``cat(3, flow, rgb)``)
and the test (dense, ``augmentation = 'none'``) branch of the getBatch functions
(``cnn_ucf101_get_im_flow_batch.m`` l. 183-185, ``_frame_batch.m`` l. 166-168,
``_flow_batch.m`` l. 193-195), which then ``bsxfun(@minus, imo, avg)``: one value
per channel, or one value for all channels. The crop branches (training and the
crop test protocols; ``_im_flow_batch.m`` l. 291-292) subtract ``avg`` as stored:
pixel-wise for an ``S x S x C`` mean image (:func:`mean_image`, used by evaluation's
crop protocols), per channel for ``1 x 1 x C``.

How each stored shape is read (:func:`mean_hw`, the only implementation)::

    stored as        every caller                   MATLAB mean(mean(avg,1),2)
    empty / absent   nothing subtracted             nothing (isempty)
    1 x 1 x C        C values                       same
    H x W x C        C values, averaged over H, W   same
    C (1-D, Python)  C values                       (MATLAB has no 1-D arrays)
    1 x C, C x 1     C values (a channel vector)    ONE value, the mean of all C
    H x W            one value                      same
    scalar           one value                      same

One value is subtracted from every channel (``bsxfun``). The means are computed in
the array's own precision (single stays single), summing rows in order, as
MATLAB/Octave do (the fusion fixtures check it bit for bit).

The ONE place where a caller keeps MATLAB's literal reading of a ``1 x C`` / ``C x 1``
vector (``vector_as_channels=False``: one value) is evaluation
(:mod:`matconv_port.eval.model_io`), because the test code of the original takes
``mean(mean(avg, 1), 2)`` of whatever the net holds. The fusion build, training
and :class:`~matconv_port.fusion.TwoStreamClipModel` read such a vector as C channel
means (MATLAB's fusion script would collapse it to one value and build a net whose
mean does not fit its inputs; its training crops would fail in ``bsxfun``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from matconv_port.errors import ModelFormatError

__all__ = ["average_image", "mean_hw", "channel_means", "mean_image"]


def average_image(meta: Any) -> np.ndarray | None:
    """``meta.normalization.averageImage`` as an array, or None when absent or empty."""
    norm = meta.get("normalization") if isinstance(meta, dict) else None
    avg = norm.get("averageImage") if isinstance(norm, dict) else None
    if avg is None or np.size(avg) == 0:
        return None
    return np.asarray(avg)


def mean_hw(avg: Any, vector_as_channels: bool = True) -> np.ndarray | None:
    """``mean(mean(avg, 1), 2)`` as a ``1 x 1 x C`` array in ``avg``'s precision
    (float64 for integer input); None for None / empty. A 1-D array, and with
    ``vector_as_channels`` a ``1 x C`` / ``C x 1`` one, is read as ``1 x 1 x C``."""
    if avg is None:
        return None
    arr = np.asarray(avg)
    if arr.size == 0:
        return None
    if arr.ndim == 1 or (vector_as_channels and arr.ndim == 2 and 1 in arr.shape):
        arr = arr.reshape(1, 1, -1, order="F")
    while arr.ndim < 3:
        arr = arr[..., None]
    dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    arr = arr.astype(dtype)
    for axis in (0, 1):
        n = arr.shape[axis]
        moved = np.moveaxis(arr, axis, 0)
        acc = np.zeros(moved.shape[1:], dtype=dtype)
        for row in moved:
            acc = (acc + row).astype(dtype)
        arr = np.moveaxis((acc / dtype.type(n)).astype(dtype)[None], 0, axis)
    return arr


def channel_means(avg: Any, channels: int, vector_as_channels: bool = True, what: str = "the net's input") -> np.ndarray:
    """The ``channels`` values subtracted per channel (``(channels,)``, ``avg``'s
    precision): zeros without a mean, one value repeated, or :func:`mean_hw`'s C values
    (C must equal ``channels``; else a one-line :class:`ModelFormatError`)."""
    m = mean_hw(avg, vector_as_channels)
    if m is None:
        return np.zeros(channels, np.float32)
    flat = m.reshape(-1, order="F")
    if flat.size == 1:
        return np.full(channels, flat[0], flat.dtype)
    if flat.size != channels:
        raise ModelFormatError(f"meta.normalization.averageImage has {flat.size} channels, not the {channels} of {what}")
    return flat


def mean_image(avg: Any) -> np.ndarray | None:
    """A full mean image as ``C x H x W`` float32 (what the crop branches subtract
    pixel-wise from ``H x W`` crops), or None when ``avg`` is not one (``H * W == 1``,
    a vector, empty)."""
    if avg is None:
        return None
    arr = np.asarray(avg)
    if arr.ndim == 2 and min(arr.shape) > 1:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[0] * arr.shape[1] <= 1:
        return None
    return np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)
