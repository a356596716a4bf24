"""The original TRAINING sampling and augmentation (the training branches of
``cnn_ucf101_get_im_flow_batch.m``, ``_get_frame_batch.m``, ``_get_flow_batch.m``).

A :class:`ClipPlan` says, for one video of a sub-batch, which RGB frames and flow
frames to read (MatConvNet's 1-based numbers, ``frame%06d.jpg``), the crop box
``(x, y, w, h)`` (0-based pixels of the stored frame), whether to flip, and the output
size. Plans are drawn from a ``numpy.random.Generator`` so a run is reproducible from
its seed (MATLAB's ``rand`` streams cannot be reproduced; the distributions are the
original's).

Rules:

* ``fusion`` (``frameSample='temporalStrideRandom'``, ``nFramesPerVid=5``, stack of 20):
  one temporal stride per sub-batch drawn from ``temporalStride`` (5..15); candidates
  ``6:stride:n-5``; fewer than 5 -> the original padding loop (alternately from the end
  and the start, stride shrinking by one per pass); more -> ``(s+1):(s+5)`` with
  ``s = randi(len-5)`` (the window at the first candidate is never used).
* ``rgb`` (``frameSample='random'``, 1 frame): a uniformly random frame ``1..n``.
* ``flow`` (``'random'``, 1 frame): a uniformly random frame ``6..n-5``.
* Flow stack of a sample at RGB frame ``f``: flow frames ``f-5 .. f+4``, channels
  ``u, v`` interleaved; in the fused input the 20 flow channels come before RGB.

Crops (all resized to the net's ``imageSize``, aspect not kept):

* ``noCtr`` (fusion) / ``borders25`` (rgb): crop side ``round(min(S .* (0.75 + 0.5 rand(2,1)),
  [h; w]))`` per video (height and width drawn independently), position from the
  border-biased set: 20 x 20 grid positions in ``[.75, 1]^2`` plus 20 x 20 in
  ``[0, .25]^2`` (fractions of the free room), each with and without flip (1600
  transformations); ``dy = floor((h - sh) * tf1) + 1``, ``dx = floor((w - sw) * tf2) + 1``.
  ``noCtr`` gives the videos of a sub-batch distinct entries of one random
  permutation (entries 2, 3, ...); ``borders25`` gives every video the SAME entry
  (the original indexes the permutation with ``mod(ai-1, .)+1``).
* ``multiScaleRegular`` (flow): crop height and width each one of
  ``[256 224 192 168] * S/224`` (clipped to the frame), at one of the 4 corners or the
  centre, flipped with probability 1/2.
* Flip: horizontal mirror; u channels become ``255 - u`` (before mean subtraction).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from matconv_port.errors import DataError
from matconv_port.eval.matlab import colon
from matconv_port.eval.sampling import flow_stack as flow_stack_frames  # noqa: F401  (one implementation; the loop imports it here)
from matconv_port.eval.sampling import pad_samples

FLOW_STACK = 20
TEMPORAL_STRIDES = tuple(range(5, 16))
AUGMENTATIONS = ("noCtr", "borders25", "multiScaleRegular", "none")


@dataclass
class ClipPlan:
    """What to read and how to augment it for one video of a training sub-batch."""

    video: str
    label: int
    rgb_frames: list[int]
    #: per clip frame, the flow frame numbers of its stack in channel order (u, v, u, v...)
    flow_frames: list[list[int]] = field(default_factory=list)
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)
    flip: bool = False
    out_size: tuple[int, int] = (224, 224)


def temporal_stride_random_frames(n: int, stride: int, num: int = 5, stack: int = FLOW_STACK,
                                  rng: np.random.Generator | None = None) -> list[int]:
    """``frameSample='temporalStrideRandom'`` of ``get_im_flow_batch`` (training)."""
    h = stack // 4
    if n < 2 * h + 1:
        raise DataError(f"{n} frames: a {stack}-channel flow stack needs at least {2 * h + 1}")
    rng = rng or np.random.default_rng()
    # nFrameStack = nFramesPerVid in training; no linspace fallback in this branch
    fs = pad_samples(colon(h + 1, stride, n - h), n, num, stride, num, h)
    if len(fs) > num:
        s = int(rng.integers(1, len(fs) - num + 1))  # randi(len-num)
        fs = fs[s:s + num]
    return [int(v) for v in fs]


def random_rgb_frame(n: int, rng: np.random.Generator) -> int:
    """``frameSample='random'``, one frame (``get_frame_batch``): uniform over ``1..n``."""
    if n < 1:
        raise DataError("video without frames")
    return int(rng.integers(1, n + 1))


def random_flow_frame(n: int, rng: np.random.Generator, stack: int = FLOW_STACK) -> int:
    """``frameSample='random'``, one frame (``get_flow_batch``): uniform over ``h+1..n-h``."""
    h = stack // 4
    if n < 2 * h + 1:
        raise DataError(f"{n} frames: a {stack}-channel flow stack needs at least {2 * h + 1}")
    return int(rng.integers(h + 1, n - h + 1))


def border_transforms() -> np.ndarray:
    """The 3 x 1600 ``tfs`` of ``noCtr``/``borders25``: rows (tf1 for y, tf2 for x, flip),
    columns in MATLAB's order (``[tx1 tx2](:)``, then the same with flip)."""
    lin1 = np.linspace(0.75, 1.0, 20)
    lin2 = np.linspace(0.0, 0.25, 20)
    tx1, ty1 = np.meshgrid(lin1, lin1)
    tx2, ty2 = np.meshgrid(lin2, lin2)
    tx = np.concatenate([tx1, tx2], axis=1).ravel(order="F")
    ty = np.concatenate([ty1, ty2], axis=1).ravel(order="F")
    tfs = np.stack([tx, ty, np.zeros_like(tx)])
    tfs_f = tfs.copy()
    tfs_f[2] = 1
    return np.concatenate([tfs, tfs_f], axis=1)


_TFS = border_transforms()


def jitter_size(out_size: tuple[int, int], frame_hw: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
    """``round(min(S .* (.75 + .5 rand(2,1)), [h; w]))`` (MATLAB round: half away from zero)."""
    r = 0.75 + 0.5 * rng.random(2)
    sh = min(out_size[0] * r[0], frame_hw[0])
    sw = min(out_size[1] * r[1], frame_hw[1])
    return int(math.floor(sh + 0.5)), int(math.floor(sw + 0.5))


def border_crop(tf: np.ndarray, size: tuple[int, int], frame_hw: tuple[int, int]) -> tuple[tuple[int, int, int, int], bool]:
    """Crop box (0-based ``x, y, w, h``) and flip for one border transformation."""
    sh, sw = size
    h, w = frame_hw
    dy = int(math.floor((h - sh) * tf[0]))
    dx = int(math.floor((w - sw) * tf[1]))
    return (dx, dy, sw, sh), bool(tf[2])


def multiscale_regular_crop(out_size: tuple[int, int], frame_hw: tuple[int, int],
                            rng: np.random.Generator) -> tuple[tuple[int, int, int, int], bool]:
    """``multiScaleRegular`` crop box and flip (sizes scaled by ``S/224``)."""
    h, w = frame_hw
    regs = [256, 224, 192, 168]
    sh = min(int(round(regs[int(rng.integers(0, 4))] * out_size[0] / 224)), h)
    sw = min(int(round(regs[int(rng.integers(0, 4))] * out_size[1] / 224)), w)
    dys = [0, h - sh, 0, h - sh, (h - sh + 1) // 2]
    dxs = [0, w - sw, w - sw, 0, (w - sw + 1) // 2]
    corner = int(rng.integers(0, 5))
    flip = bool(rng.random() > 0.5)
    return (dxs[corner], dys[corner], sw, sh), flip


def plan_sub_batch(kind: str, videos: list[tuple[str, int, int]], rng: np.random.Generator, *,
                   out_size: tuple[int, int], frame_hw: tuple[int, int], augmentation: str,
                   frames_per_clip: int = 5, temporal_strides: tuple[int, ...] = TEMPORAL_STRIDES,
                   stack: int = FLOW_STACK) -> list[ClipPlan]:
    """Plans for one sub-batch (one getBatch call): ``videos`` = ``(name, label, n_frames)``.

    ``kind``: ``"fusion"`` (RGB + flow clips), ``"rgb"`` or ``"flow"`` (one frame each).
    ``frame_hw``: the stored frame size (all frames of a dataset share it).
    """
    if augmentation not in AUGMENTATIONS:
        raise DataError(f"unknown augmentation {augmentation!r}: choose one of {', '.join(AUGMENTATIONS)}")
    stride = int(temporal_strides[int(rng.integers(0, len(temporal_strides)))]) if kind == "fusion" else 0
    perm = rng.permutation(_TFS.shape[1])
    plans = []
    for i, (name, label, n) in enumerate(videos):
        try:
            if kind == "fusion":
                frames = temporal_stride_random_frames(n, stride, frames_per_clip, stack, rng)
            elif kind == "rgb":
                frames = [random_rgb_frame(n, rng)]
            elif kind == "flow":
                frames = [random_flow_frame(n, rng, stack)]
            else:
                raise ValueError(f"kind must be fusion, rgb or flow, not {kind!r}")
        except DataError as exc:
            raise DataError(f"video {name}: {exc}") from None
        flows = [flow_stack_frames(f, stack) for f in frames] if kind in ("fusion", "flow") else []
        if augmentation == "none":
            crop, flip = (0, 0, frame_hw[1], frame_hw[0]), False
        elif augmentation == "multiScaleRegular":
            crop, flip = multiscale_regular_crop(out_size, frame_hw, rng)
        else:
            size = jitter_size(out_size, frame_hw, rng)
            k = (i + 1) % perm.size if augmentation == "noCtr" else 0
            crop, flip = border_crop(_TFS[:, perm[k]], size, frame_hw)
        plans.append(ClipPlan(name, int(label), frames, flows, crop, flip, tuple(out_size)))
    return plans
