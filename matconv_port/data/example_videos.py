"""Small example videos written with OpenCV, for tests and demos of ``prepare``.

:func:`write_moving_square_video` draws a bright textured square moving with a
constant velocity over a static darker texture and encodes it with
``cv2.VideoWriter`` (``MJPG`` in ``.avi``, ``mp4v`` in ``.mp4``). The textured
background keeps optical flow well-posed; the square's motion is what a test checks
(u > 128 where it moves right, v > 128 where it moves down).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from matconv_port.errors import DataError

CODECS = {".avi": "MJPG", ".mp4": "mp4v"}


def square_frames(
    positions: list[tuple[float, float]],
    width: int = 160,
    height: int = 120,
    square: int = 30,
    seed: int = 0,
) -> list[np.ndarray]:
    """BGR ``uint8`` frames showing a bright textured square (grey 170..255) with its
    top-left corner at ``positions[k] = (x, y)`` (rounded) in frame ``k``, over a fixed
    darker texture (grey 40..110). Both are textured so that flow is well-posed
    everywhere (a uniform square has no measurable motion inside it)."""
    rng = np.random.default_rng(seed)
    tex = rng.integers(40, 110, size=(height // 8 + 1, width // 8 + 1), dtype=np.uint8)
    bg = cv2.resize(tex, (width, height), interpolation=cv2.INTER_CUBIC)
    patch = rng.integers(170, 256, size=(square // 5 + 1, square // 5 + 1), dtype=np.uint8)
    patch = np.clip(cv2.resize(patch, (square, square), interpolation=cv2.INTER_LINEAR), 170, 255)
    out = []
    for x, y in positions:
        img = bg.copy()
        x, y = int(round(x)), int(round(y))
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + square, width), min(y + square, height)
        if x1 > x0 and y1 > y0:
            img[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]
        out.append(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    return out


def moving_square_frames(
    frames: int = 12,
    width: int = 160,
    height: int = 120,
    velocity: tuple[float, float] = (3.0, 0.0),
    square: int = 30,
    seed: int = 0,
) -> list[np.ndarray]:
    """Frames of a square moving ``velocity = (dx, dy)`` px per frame (y down), its path
    centred on the frame centre (see :func:`square_frames`)."""
    cx, cy = width / 2 - square / 2, height / 2 - square / 2
    pos = [(cx + (k - (frames - 1) / 2) * velocity[0], cy + (k - (frames - 1) / 2) * velocity[1]) for k in range(frames)]
    return square_frames(pos, width, height, square, seed)


def write_video(path: str | Path, images: list[np.ndarray], fps: float = 25.0) -> Path:
    """Encode BGR frames to ``path`` (``.avi`` -> MJPG, ``.mp4`` -> mp4v)."""
    path = Path(path)
    codec = CODECS.get(path.suffix.lower())
    if codec is None:
        raise DataError(f"{path}: example videos are .avi (MJPG) or .mp4 (mp4v)")
    h, w = images[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), float(fps), (w, h))
    if not writer.isOpened():
        raise DataError(f"{path}: OpenCV cannot write {codec} video here")
    try:
        for img in images:
            writer.write(img)
    finally:
        writer.release()
    return path


def write_moving_square_video(path: str | Path, velocity: tuple[float, float] = (3.0, 0.0), frames: int = 12,
                              width: int = 160, height: int = 120, seed: int = 0) -> Path:
    """Write a moving-square example video to ``path`` and return it."""
    return write_video(path, moving_square_frames(frames, width, height, velocity, seed=seed))
