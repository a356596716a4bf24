"""A tiny synthetic action dataset whose CLASS IS ITS MOTION, in the UCF101 layout.

Each video shows one shape (square, disc or triangle; random size, colour and speed)
moving with constant velocity over a static textured background of random colours,
wrapping around the frame edges (so a fast shape never leaves the frame). The class
is the direction of motion UP TO A HORIZONTAL MIRROR: class 1 ``MoveUp``, 2
``MoveDown``, 3 ``MoveSideways`` (left or right), 4 ``MoveUpDiagonal`` (up-left or
up-right), 5 ``MoveDownDiagonal``; more than 5 classes use evenly spaced angles from
straight up to straight down (``MoveAngle000`` ... ``MoveAngle180``), each video
mirrored left/right at random. Classes are mirror-invariant on purpose: the paper's
test protocols average every clip with its horizontal mirror (u inverted) and
training flips at random, which would turn "right" into "left". A single RGB frame
does not show the class; the flow does, so a flow (or fused) net beats an RGB net.

Written like real data (:mod:`.writers`): ``jpegs_256/v_<Class>_g<GG>_c<CC>/frame%06d.jpg``
and ``tvl1_flow/{u,v}/...`` (flow frame k = motion from frame k to k+1, clipped to
+-20 and mapped to grey with 128 = no motion), and ``splits/classInd.txt``,
``trainlist0N.txt``, ``testlist0N.txt`` for N = 1, 2, 3. The folder is still called
``jpegs_256`` whatever the frame size, because that is the layout readers expect.

Flow is ANALYTIC by default (the exact displacement of the shape on its pixels, 0
elsewhere: fast and noise-free); ``flow="tvl1" | "farneback" | "dis"`` computes it from
the rendered frames with the real-video code instead.

Defaults (4 classes x 12 videos, 32 frames of 64 x 80) write ~4,600 small JPEGs in
about a second or two: enough for ``eval``/``train`` demos on 2 CPU cores. The
evaluation's 224 x 224 crop protocols need ``height=256, width=340`` (the real size);
the dense and fusion protocols use the whole frame at any size.

Groups and splits mimic UCF101: videos of a class are grouped (``g01``... with clips
``c01``, ``c02``...: 2 clips per group when a class has 6 or more videos), and split N
tests a block of about a third of the groups (split 1 the first block, split 2 the
next...), so test groups never appear in the same split's training list.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from matconv_port.data.flow import FLOW_METHODS, create_flow, to_gray
from matconv_port.data.splits import write_split_files
from matconv_port.data.writers import VideoOutput
from matconv_port.errors import DataError

#: (class, direction (dx >= 0, dy) in image coordinates, y down); videos of a class
#: with dx > 0 move left or right at random (the classes are mirror-invariant)
_NAMED = [
    ("MoveUp", (0.0, -1.0)),
    ("MoveDown", (0.0, 1.0)),
    ("MoveSideways", (1.0, 0.0)),
    ("MoveUpDiagonal", (math.sqrt(0.5), -math.sqrt(0.5))),
    ("MoveDownDiagonal", (math.sqrt(0.5), math.sqrt(0.5))),
]

DEFAULT_NUM_CLASSES = 4
DEFAULT_VIDEOS_PER_CLASS = 12
DEFAULT_FRAMES = 32
DEFAULT_HEIGHT = 64
DEFAULT_WIDTH = 80
NUM_SPLITS = 3


def class_directions(num_classes: int) -> list[tuple[str, tuple[float, float]]]:
    """``[(ClassName, (dx, dy) unit direction in image coordinates, y down)]`` for the classes."""
    if num_classes < 1:
        raise DataError(f"--num-classes must be at least 1, not {num_classes}")
    if num_classes <= len(_NAMED):
        return _NAMED[:num_classes]
    out = []
    for k in range(num_classes):
        ang = 180.0 * k / (num_classes - 1)  # 0 = up, 90 = sideways, 180 = down
        rad = math.radians(ang)
        out.append((f"MoveAngle{int(round(ang)):03d}", (abs(math.sin(rad)), -math.cos(rad))))
    return out


def _group_layout(videos_per_class: int) -> list[tuple[int, int]]:
    clips = 2 if videos_per_class >= 6 else 1
    return [(j // clips + 1, j % clips + 1) for j in range(videos_per_class)]


def split_test_groups(num_groups: int, split: int) -> set[int]:
    """Test groups (1-based) of split ``split`` (1..3): a block of ``max(1, G // 3)`` groups."""
    size = max(1, num_groups // NUM_SPLITS)
    size = min(size, num_groups - 1)
    return {((split - 1) * size + i) % num_groups + 1 for i in range(size)}


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = rng.integers(0, 256, size=3)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    # static texture: a few soft blobs and some fine noise, so flow methods have structure
    for _ in range(int(rng.integers(3, 7))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.1, 0.35) * min(h, w)
        col = rng.integers(0, 256, size=3).astype(np.float32)
        yy, xx = np.mgrid[0:h, 0:w]
        a = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)))[..., None] * 0.6
        img = img * (1 - a) + col * a
    img += rng.normal(0, 6, size=(h, w, 3))
    return np.clip(img, 0, 255).astype(np.float32)


def _shape_mask(kind: str, cx: float, cy: float, size: float, h: int, w: int) -> np.ndarray:
    """Anti-aliased mask (float 0..1) of a shape centred at (cx, cy), wrapped around the frame."""
    shift = 4
    scale = 1 << shift
    canvas = np.zeros((h, w), np.uint8)
    for ox in (-w, 0, w):
        for oy in (-h, 0, h):
            x, y = cx + ox, cy + oy
            if x < -size or x > w + size or y < -size or y > h + size:
                continue
            if kind == "square":
                pts = np.array([[x - size, y - size], [x + size, y - size], [x + size, y + size], [x - size, y + size]])
            elif kind == "triangle":
                pts = np.array([[x, y - size], [x + size, y + size], [x - size, y + size]])
            else:
                cv2.circle(canvas, (int(round(x * scale)), int(round(y * scale))), int(round(size * scale)), 255, -1, cv2.LINE_AA, shift)
                continue
            cv2.fillPoly(canvas, [np.round(pts * scale).astype(np.int32)], 255, cv2.LINE_AA, shift)
    return canvas.astype(np.float32) / 255.0


def _render_video(rng: np.random.Generator, direction: tuple[float, float], frames: int, h: int, w: int):
    bg = _background(rng, h, w)
    kind = ["square", "disc", "triangle"][int(rng.integers(0, 3))]
    size = rng.uniform(0.12, 0.2) * min(h, w)
    bg_gray = float(np.mean(bg))
    for _ in range(20):  # a colour that stands out from the background
        colour = rng.integers(0, 256, size=3).astype(np.float32)
        if abs(float(np.mean(colour)) - bg_gray) > 60:
            break
    speed = min(rng.uniform(0.025, 0.06) * min(h, w), 19.0)  # pixels per frame
    vx, vy = direction[0] * speed, direction[1] * speed
    x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
    images, masks = [], []
    for k in range(frames):
        mask = _shape_mask(kind, (x0 + k * vx) % w, (y0 + k * vy) % h, size, h, w)
        img = bg * (1 - mask[..., None]) + colour * mask[..., None]
        images.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
        masks.append(mask)
    info = {"shape": kind, "speed": float(speed), "velocity": (float(vx), float(vy))}
    return images, masks, (vx, vy), info


def make_synthetic_dataset(
    root: str,
    num_classes: int = DEFAULT_NUM_CLASSES,
    videos_per_class: int = DEFAULT_VIDEOS_PER_CLASS,
    frames: int = DEFAULT_FRAMES,
    height: int = DEFAULT_HEIGHT,
    width: int = DEFAULT_WIDTH,
    seed: int = 0,
    flow: str = "analytic",
) -> dict:
    """Write the synthetic dataset under ``root`` and describe it.

    Returns ``{"root", "classes": [names, label = index + 1], "videos": [{"name",
    "class", "label", "group", "clip", "frames", "shape", "speed", "velocity"}...],
    "splits": {1: {"train": [names], "test": [names]}, 2: ..., 3: ...}, "frames",
    "height", "width", "flow", "split_dir"}``. Deterministic for a given ``seed``.
    """
    if videos_per_class < 2:
        raise DataError(f"--videos-per-class must be at least 2 (one train, one test group), not {videos_per_class}")
    if frames < 2:
        raise DataError(f"--frames must be at least 2, not {frames}")
    if height < 8 or width < 8:
        raise DataError(f"frame size {height} x {width} is too small (at least 8 x 8)")
    if flow != "analytic" and flow not in FLOW_METHODS:
        raise DataError(f"unknown flow method {flow!r}: choose analytic or one of {', '.join(FLOW_METHODS)}")
    out_root = Path(root)
    out_root.mkdir(parents=True, exist_ok=True)
    flow_fn = None if flow == "analytic" else create_flow(flow)
    classes = class_directions(num_classes)
    layout = _group_layout(videos_per_class)
    num_groups = layout[-1][0]
    rng = np.random.default_rng(seed)
    videos: list[dict[str, Any]] = []
    for label, (cls, direction) in enumerate(classes, start=1):
        for group, clip in layout:
            name = f"v_{cls}_g{group:02d}_c{clip:02d}"
            mirrored = direction[0] > 1e-9 and rng.random() < 0.5  # this video moves left
            d = (-direction[0], direction[1]) if mirrored else direction
            images, masks, (vx, vy), info = _render_video(rng, d, frames, height, width)
            out = VideoOutput(out_root, name)
            for img in images:
                out.add_frame(img)
            for k in range(frames - 1):
                if flow_fn is None:
                    inside = (masks[k] > 0.5).astype(np.float32)
                    field = np.stack([inside * vx, inside * vy], axis=-1)
                else:
                    field = flow_fn(to_gray(images[k]), to_gray(images[k + 1]))
                out.add_flow(field)
            out.finish(source="synthetic", flow=flow, height=height, width=width, label=label)
            videos.append({"name": name, "class": cls, "label": label, "group": group, "clip": clip, "frames": frames, **info})
    class_names = [c for c, _ in classes]
    splits: dict[int, dict[str, list]] = {}
    pairs: dict[int, dict[str, list]] = {}
    for n in range(1, NUM_SPLITS + 1):
        test_groups = split_test_groups(num_groups, n)
        tr = [v for v in videos if v["group"] not in test_groups]
        te = [v for v in videos if v["group"] in test_groups]
        splits[n] = {"train": [v["name"] for v in tr], "test": [v["name"] for v in te]}
        pairs[n] = {"train": [(v["class"], v["name"]) for v in tr], "test": [(v["class"], v["name"]) for v in te]}
    split_dir = out_root / "splits"
    write_split_files(split_dir, class_names, pairs)
    return {
        "root": str(out_root),
        "classes": class_names,
        "videos": videos,
        "splits": splits,
        "frames": frames,
        "height": height,
        "width": width,
        "flow": flow,
        "split_dir": str(split_dir),
    }
