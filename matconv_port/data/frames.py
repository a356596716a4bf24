"""Where a video's frames live and how they are decoded: one implementation for
``prepare`` (writing), evaluation and training (reading).

Layout under ``DATA_ROOT`` (SPEC section 4; the ``imageDir`` / ``flowDir`` that
``cnn_ucf101_get_im_flow_batch.m`` reads with ``vl_imreadjpeg``)::

    jpegs_256/<video>/frame%06d.jpg        RGB frame k (k = 1..n)
    tvl1_flow/u/<video>/frame%06d.jpg      u of the flow from frame k to k+1 (k = 1..n-1)
    tvl1_flow/v/<video>/frame%06d.jpg      v of the same flow

Decoding: OpenCV (``np.fromfile`` + ``cv2.imdecode``, so non-ASCII paths work); RGB
frames come out in R, G, B order as ``vl_imreadjpeg`` gives them, flow frames as one
grey channel. A missing or unreadable file is a one-line :class:`DataError` naming it.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from threading import Lock

import cv2
import numpy as np

from matconv_port.errors import DataError

__all__ = ["RGB_DIR", "FLOW_DIR", "FRAME_PATTERN", "rgb_dir", "rgb_path", "flow_path", "decode_jpeg",
           "read_jpeg", "frame_size", "FrameReader"]

RGB_DIR = "jpegs_256"
FLOW_DIR = "tvl1_flow"
FRAME_PATTERN = "frame{:06d}.jpg"


def rgb_dir(root: str, video: str) -> str:
    """``root/jpegs_256/<video>``: the folder of ``video``'s RGB frames."""
    return os.path.join(root, RGB_DIR, video)


def rgb_path(root: str, video: str, frame: int) -> str:
    """``root/jpegs_256/<video>/frame%06d.jpg`` (1-based frame number)."""
    return os.path.join(root, RGB_DIR, video, FRAME_PATTERN.format(frame))


def flow_path(root: str, axis: str, video: str, frame: int) -> str:
    """``root/tvl1_flow/<u|v>/<video>/frame%06d.jpg`` (1-based flow frame number)."""
    if axis not in ("u", "v"):
        raise ValueError(f"flow axis must be 'u' or 'v', not {axis!r}")
    return os.path.join(root, FLOW_DIR, axis, video, FRAME_PATTERN.format(frame))


def decode_jpeg(path: str, grey: bool) -> np.ndarray:
    """Decode a JPEG as OpenCV gives it: ``H x W`` uint8 for ``grey``, else ``H x W x 3``
    uint8 in B, G, R order. One-line :class:`DataError` naming the file when it is
    missing or unreadable."""
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: frame missing") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read frame ({exc.strerror})") from None
    img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise DataError(f"{path}: not a readable JPEG image")
    return img


def read_jpeg(path: str, grey: bool) -> np.ndarray:
    """:func:`decode_jpeg` with colour frames in R, G, B order (a contiguous copy)."""
    img = decode_jpeg(path, grey)
    return img if grey else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def frame_size(root: str, video: str) -> tuple[int, int]:
    """``(height, width)`` of ``video``'s stored RGB frames (its first frame's)."""
    try:
        img = decode_jpeg(rgb_path(root, video, 1), True)
    except DataError as exc:
        raise DataError(f"{exc} (video {video})") from None
    return int(img.shape[0]), int(img.shape[1])


class FrameReader:
    """Reads ``video``'s RGB frames (``H x W x 3``, R, G, B; a view of the decoded BGR
    image) and flow components (``H x W``) as uint8, keeping the ``cache`` most recently
    used decoded images (0: none). Safe to share between threads; picklable (the
    cache does not travel)."""

    def __init__(self, root: str, cache: int = 0):
        self.root = root
        self.cache = int(cache)
        self._store: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = Lock()

    def __getstate__(self) -> dict:
        return {"root": self.root, "cache": self.cache}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["root"], state["cache"])

    def read(self, path: str, grey: bool) -> np.ndarray:
        """The decoded image at ``path`` (OpenCV order), from the cache when it holds it."""
        if self.cache:
            with self._lock:
                hit = self._store.get(path)
                if hit is not None:
                    self._store.move_to_end(path)
                    return hit
        img = decode_jpeg(path, grey)
        if self.cache:
            with self._lock:
                self._store[path] = img
                while len(self._store) > self.cache:
                    self._store.popitem(last=False)
        return img

    def rgb(self, video: str, frame: int) -> np.ndarray:
        return self.read(rgb_path(self.root, video, frame), False)[:, :, ::-1]

    def flow(self, axis: str, video: str, frame: int) -> np.ndarray:
        return self.read(flow_path(self.root, axis, video, frame), True)
