"""Writing prepared videos in the original layout, atomically, with done-markers.

Layout under ``DATA_ROOT`` (SPEC section 4)::

    jpegs_256/<video>/frame%06d.jpg        RGB frame k (k = 1..n)
    tvl1_flow/u/<video>/frame%06d.jpg      u of the flow from frame k to k+1 (k = 1..n-1)
    tvl1_flow/v/<video>/frame%06d.jpg      v of the same flow
    .prepare_done/<video>.json             written LAST: the video is complete

Every file is written to a temporary name in its folder and renamed into place
(``os.replace``), so a reader never sees half a JPEG. A video without its
done-marker is incomplete and is redone from scratch by :class:`VideoOutput`.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from matconv_port.atomic import atomic_write_bytes  # noqa: F401  (re-exported)
from matconv_port.data.flow import flow_to_gray
from matconv_port.data.frames import FLOW_DIR, FRAME_PATTERN, RGB_DIR, flow_path, rgb_path
from matconv_port.errors import DataError

DONE_DIR = ".prepare_done"
#: OpenCV's default JPEG quality (what gpu_flow's ``imwrite`` used).
JPEG_QUALITY = 95




def write_jpeg(path: str | Path, image: np.ndarray, quality: int = JPEG_QUALITY) -> None:
    """Encode ``image`` (BGR ``uint8`` H x W x 3, or grey H x W) as JPEG and write it atomically."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise DataError(f"{path}: JPEG encoding failed")
    atomic_write_bytes(path, buf.tobytes())


def rgb_frame_path(root: str | Path, video: str, k: int) -> Path:
    """``root/jpegs_256/<video>/frame%06d.jpg`` for 1-based frame ``k`` (:func:`~.frames.rgb_path`)."""
    return Path(rgb_path(os.fspath(root), video, k))


def flow_frame_path(root: str | Path, axis: str, video: str, k: int) -> Path:
    """``root/tvl1_flow/<axis>/<video>/frame%06d.jpg``; ``axis`` is ``"u"`` or ``"v"``; ``k`` 1-based."""
    return Path(flow_path(os.fspath(root), axis, video, k))


def done_marker_path(root: str | Path, video: str) -> Path:
    """Path of the marker that says ``video`` was written completely."""
    return Path(root) / DONE_DIR / f"{video}.json"


def is_done(root: str | Path, video: str) -> bool:
    """True when ``video``'s done-marker exists under ``root``."""
    return done_marker_path(root, video).is_file()


def read_done_marker(root: str | Path, video: str) -> dict[str, Any] | None:
    """The content of ``video``'s done-marker, or None when it has none."""
    try:
        return json.loads(done_marker_path(root, video).read_text())
    except (FileNotFoundError, ValueError):
        return None


def video_dirs(root: str | Path, video: str) -> list[Path]:
    """The three folders that hold ``video``'s frames (RGB, u, v)."""
    root = Path(root)
    return [root / RGB_DIR / video, root / FLOW_DIR / "u" / video, root / FLOW_DIR / "v" / video]


class VideoOutput:
    """Writes one video: RGB frames and flow fields in order, then the done-marker.

    Creating it removes the video's marker and any earlier (partial) frames, so an
    interrupted video is redone from scratch. Call :meth:`add_frame` for frames
    1..n and :meth:`add_flow` for flow 1..n-1 (each numbered in call order), then
    :meth:`finish`.
    """

    def __init__(self, root: str | Path, video: str, quality: int = JPEG_QUALITY):
        if not video or "/" in video or video.startswith("."):
            raise DataError(f"{video!r}: not a usable video name")
        self.root = Path(root)
        self.video = video
        self.quality = int(quality)
        self.num_frames = 0
        self.num_flows = 0
        self._dirs = [os.fspath(d) for d in video_dirs(self.root, video)]
        marker = done_marker_path(self.root, video)
        if marker.exists():
            marker.unlink()
        for folder in video_dirs(self.root, video):
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)

    def add_frame(self, bgr: np.ndarray) -> Path:
        """Write the next RGB frame (BGR ``uint8``, as OpenCV decodes it)."""
        self.num_frames += 1
        path = os.path.join(self._dirs[0], FRAME_PATTERN.format(self.num_frames))
        write_jpeg(path, bgr, self.quality)
        return Path(path)

    def add_flow(self, flow: np.ndarray) -> None:
        """Write the next flow field (H x W x 2 float pixels, ``[..., 0] = u``, ``[..., 1] = v``)."""
        self.add_flow_gray(flow_to_gray(flow[..., 0]), flow_to_gray(flow[..., 1]))

    def add_flow_gray(self, u: np.ndarray, v: np.ndarray) -> None:
        """Write the next flow field already encoded as ``uint8`` grey images."""
        self.num_flows += 1
        name = FRAME_PATTERN.format(self.num_flows)
        write_jpeg(os.path.join(self._dirs[1], name), u, self.quality)
        write_jpeg(os.path.join(self._dirs[2], name), v, self.quality)

    def finish(self, **info: Any) -> Path:
        """Check the counts (n frames, n-1 flows) and write the done-marker (last)."""
        if self.num_frames < 1 or self.num_flows != self.num_frames - 1:
            raise DataError(
                f"{self.video}: wrote {self.num_frames} frames but {self.num_flows} flow fields (expected {max(self.num_frames - 1, 0)})"
            )
        marker = done_marker_path(self.root, self.video)
        marker.parent.mkdir(parents=True, exist_ok=True)
        payload = {"video": self.video, "frames": self.num_frames, "flow_frames": self.num_flows, **info}
        atomic_write_bytes(marker, (json.dumps(payload, sort_keys=True) + "\n").encode())
        return marker
