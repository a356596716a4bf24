"""Small example videos written with OpenCV, for tests and demos of ``prepare``.

:func:`write_moving_square_video` draws a bright square moving with a constant
velocity over a static textured background and encodes it with
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


def moving_square_frames(
    frames: int = 12,
    width: int = 160,
    height: int = 120,
    velocity: tuple[float, float] = (3.0, 0.0),
    square: int = 30,
    seed: int = 0,
) -> list[np.ndarray]:
    """BGR ``uint8`` frames of a white square moving ``velocity = (dx, dy)`` px per frame
    (y down) from the frame centre, over a fixed random grey texture."""
    rng = np.random.default_rng(seed)
    tex = rng.integers(40, 110, size=(height // 8 + 1, width // 8 + 1), dtype=np.uint8)
    bg = cv2.resize(tex, (width, height), interpolation=cv2.INTER_CUBIC)
    bg = cv2.cvtColor(bg, cv2.COLOR_GRAY2BGR)
    out = []
    for k in range(frames):
        img = bg.copy()
        x = int(round(width / 2 - square / 2 + k * velocity[0] - (frames - 1) * velocity[0] / 2))
        y = int(round(height / 2 - square / 2 + k * velocity[1] - (frames - 1) * velocity[1] / 2))
        cv2.rectangle(img, (x, y), (x + square - 1, y + square - 1), (235, 235, 235), -1)
        out.append(img)
    return out


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
