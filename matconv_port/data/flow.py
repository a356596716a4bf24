"""Optical flow between consecutive frames and its grey-JPEG encoding.

Convention of the released UCF101/HMDB51 flow (``feichtenhofer/gpu_flow``):

* flow is computed on the resized frames converted to grey ``uint8``
  (``cv2.COLOR_BGR2GRAY``), from frame ``k`` to frame ``k + 1``;
* ``u`` is the horizontal displacement (positive = to the right), ``v`` the vertical
  one (positive = downwards), in pixels;
* each component is clipped to ``[-B, B]`` (``B = 20``) and mapped linearly to grey:
  ``g = round(255 * (x + B) / (2 B))`` in single precision, rounding half to even
  (OpenCV's ``cvRound``); so 0 motion is 127.5 -> 128, +20 -> 255, -20 -> 0.

Methods: ``tvl1`` (OpenCV contrib ``DualTVL1OpticalFlow`` with its default
parameters, the CPU counterpart of the GPU TV-L1 the authors used), ``farneback``
(``calcOpticalFlowFarneback``) and ``dis`` (``DISOpticalFlow``, preset MEDIUM):
the last two are 40-70x faster and less accurate; ``tvl1-torch``
(:mod:`matconv_port.data.tvl1_torch`: the same TV-L1 scheme and parameters as ``tvl1``
written in PyTorch, many frame pairs at once, on CPU or GPU).
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from matconv_port.errors import DataError

#: Names accepted by :func:`create_flow`.
FLOW_METHODS: tuple[str, ...] = ("tvl1", "farneback", "dis", "tvl1-torch")

#: Methods that compute many frame pairs of a video in one call (``--batch-pairs``, ``--device``).
BATCHED_FLOW_METHODS: tuple[str, ...] = ("tvl1-torch",)

#: Clipping bound of the released flow, pixels per frame.
FLOW_BOUND = 20.0

FlowFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


def to_gray(frame: np.ndarray) -> np.ndarray:
    """BGR ``uint8`` frame -> grey ``uint8`` (what the flow is computed on)."""
    if frame.ndim == 2:
        return frame
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def create_flow(method: str = "tvl1", device: str = "cpu") -> FlowFunction:
    """Return ``flow(prev_gray, next_gray) -> H x W x 2 float32`` (``[..., 0] = u``, ``[..., 1] = v``).

    ``prev_gray``/``next_gray`` are grey ``uint8`` images of the same size. The
    returned callable keeps its OpenCV algorithm object, so create one per worker.
    ``device`` is used by ``tvl1-torch`` only (which also has ``.pairs(prev, next)`` for
    ``B x H x W`` stacks).
    """
    name = str(method).lower()
    if name == "tvl1-torch":
        from matconv_port.data.tvl1_torch import TVL1Torch

        return TVL1Torch(device)
    if name == "tvl1":
        if not hasattr(cv2, "optflow"):
            raise DataError("flow method tvl1 needs opencv-contrib (cv2.optflow); install opencv-contrib-python-headless or use --flow dis")
        algo = cv2.optflow.DualTVL1OpticalFlow_create()

        def tvl1(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
            return algo.calc(prev, nxt, None)

        return tvl1
    if name == "dis":
        algo = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

        def dis(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
            return algo.calc(prev, nxt, None)

        return dis
    if name == "farneback":

        def farneback(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
            return cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)

        return farneback
    raise DataError(f"unknown flow method {method!r}: choose one of {', '.join(FLOW_METHODS)}")


def flow_to_gray(component: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """Encode one flow component (pixels) as ``uint8`` grey: clip to ``[-bound, bound]``,
    map linearly to 0..255 (``round(255 (x + bound) / (2 bound))``, half to even); NaN -> 128."""
    x = np.nan_to_num(np.asarray(component, dtype=np.float32), nan=0.0)
    lo = np.float32(-bound)
    x = np.clip(x, lo, np.float32(bound))
    g = np.rint(np.float32(255.0) * (x - lo) / np.float32(2.0 * bound))
    return g.astype(np.uint8)


def gray_to_flow(gray: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """Inverse of :func:`flow_to_gray` (up to quantisation): grey 0..255 -> pixels."""
    return np.asarray(gray, dtype=np.float32) * np.float32(2.0 * bound / 255.0) - np.float32(bound)
