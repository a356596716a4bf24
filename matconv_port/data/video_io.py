"""Decoding videos and resizing their frames as the original extraction tool did.

The released UCF101/HMDB51 frames were produced by ``feichtenhofer/gpu_flow``: every
frame is resized (bicubic) so that its SHORTER side becomes 256, each side rounded
down to an even number of pixels; UCF101's 320 x 240 videos become 340 x 256
(W x H). For landscape videos (all of UCF101/HMDB51) that is "height 256". Flow is
computed on those resized frames.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from matconv_port.errors import DataError

#: File extensions treated as videos when scanning a folder (lower case).
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".avi", ".mp4", ".m4v", ".mkv", ".mov", ".mpg", ".mpeg", ".webm", ".wmv", ".flv", ".3gp", ".ogv",
)

#: The released data's shorter side.
DEFAULT_SHORT_SIDE = 256


def is_video_file(path: Path) -> bool:
    """True when ``path`` is a file whose extension is in :data:`VIDEO_EXTENSIONS`."""
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def find_videos(folder: str | Path) -> list[Path]:
    """All video files below ``folder`` (recursively), sorted by path."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder of videos")
    return sorted(p for p in root.rglob("*") if is_video_file(p))


def output_size(width: int, height: int, short_side: int | None = DEFAULT_SHORT_SIDE) -> tuple[int, int]:
    """The ``(width, height)`` a ``width x height`` frame is resized to.

    Follows gpu_flow: ``f = max(S / W, S / H)`` in single precision, each side
    ``floor(side * f)`` minus its parity (even sizes). ``short_side=None`` (or 0)
    keeps the size. Example: 320 x 240 -> 340 x 256.
    """
    if not short_side:
        return int(width), int(height)
    s = np.float32(short_side)
    factor = max(s / np.float32(width), s / np.float32(height))
    w = int(np.floor(np.float32(width) * factor))
    h = int(np.floor(np.float32(height) * factor))
    return max(w - w % 2, 2), max(h - h % 2, 2)


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a frame to ``size = (width, height)`` with bicubic interpolation (as gpu_flow)."""
    if (frame.shape[1], frame.shape[0]) == tuple(size):
        return frame
    return cv2.resize(frame, tuple(size), interpolation=cv2.INTER_CUBIC)


def iter_frames(path: str | Path, short_side: int | None = DEFAULT_SHORT_SIDE) -> Iterator[np.ndarray]:
    """Decode ``path`` and yield its frames as BGR ``uint8`` arrays (H x W x 3), resized.

    Raises :class:`DataError` (one line, naming the file) when the file cannot be
    opened or holds no decodable frame.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such video file")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError(f"{path}: cannot open video (unreadable or unsupported format)")
        size = None
        count = 0
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            elif frame.shape[2] == 4:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
            if size is None:
                size = output_size(frame.shape[1], frame.shape[0], short_side)
            count += 1
            yield resize_frame(frame, size)
        if count == 0:
            raise DataError(f"{path}: no decodable frame (corrupt or empty video)")
    finally:
        cap.release()
