"""Evaluation protocols and per-video plans: which frames, flow stacks, crops and
flips are fed, and how they are grouped into clips.

A plan depends only on the protocol, the number of RGB frames ``n`` of the video
(``jpegs_256/<video>/*.jpg``), the stored frame size (for crop boxes) and, where the
original picks a random window at test time, a seed. Frame numbers are 1-based
(MatConvNet's ``frame%06d.jpg``); crop boxes are ``[x, y, w, h]`` in 0-based pixels.

Protocols (see the original ``cnn_train_dag.m`` validation branch and the
``opts.train`` of ``cnn_ucf101_fusion.m`` / ``_spatial.m`` / ``_temporal.m``):

``fusion-paper``
    The fused net: 50 samples (:func:`~matconv_port.eval.sampling.fusion_candidates`),
    each fed on the whole frame and its mirror (denseEval). The 100 entries
    ``e = 2*(k-1) + flip`` (sample ``k``) are reshaped column-major to
    ``[20, 5]`` and permuted, so clip ``c`` (0-based) holds entries
    ``c, c+20, c+40, c+60, c+80``: samples ``k, k+10, ..., k+40`` with one flip
    state (``k = c//2 + 1``, flip = ``c`` odd). 20 clips of 5 frames.
``fusion-consecutive``
    The same 50 samples, clip ``b`` holding samples ``5b+1 .. 5b+5``, unflipped then
    flipped. 20 clips.
``dense25``
    A single-stream net: 25 frames (RGB: ``rgb_uniform_candidates``; flow:
    ``flow_uniform_candidates``), each on the whole frame then its mirror.
``crops10`` / ``crops6`` / ``crops2``
    The same 25 frames, each on ``S x S`` crops (``S`` = the net's input size, 224):
    corners ``(y, x)`` for ``y`` in ``[1, H-S+1]``, ``x`` in ``[1, W-S+1]`` (y outer),
    then the centre ``(floor((H-S+1)/2)+1, floor((W-S+1)/2)+1)`` (crops10); the middle
    row's left, right and the centre (crops6); the centre only (crops2, RGB only, as the
    original flow code refuses 2 crops). Each crop is followed by its mirror.

Everything that tells protocols apart is data: one :class:`Protocol` entry of
:data:`PROTOCOLS` (temporal stride, samples, clip length, grouping, crop layout from
:data:`CROP_LAYOUTS`, the streams it allows, the default batch). A new protocol is
one :func:`register_protocol` call; the CLI's ``--protocol`` choices follow the table.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from typing import Iterable, Sequence

from matconv_port.atomic import atomic_path
from matconv_port.errors import DataError
from matconv_port.eval.sampling import (
    Candidates,
    TooShortError,
    flow_stack,
    flow_uniform_candidates,
    fusion_candidates,
    rgb_uniform_candidates,
)

__all__ = [
    "Protocol",
    "PROTOCOLS",
    "CROP_LAYOUTS",
    "register_protocol",
    "get_protocol",
    "default_protocol",
    "Clip",
    "VideoPlan",
    "candidates_for",
    "crop_boxes",
    "plan_video",
    "plan_to_dict",
    "write_plan_jsonl",
    "video_rng",
]

STORED_FRAME_SIZE = (256, 340)
DEFAULT_CROP = 224


#: Crop layouts of the original ``'uniform'`` crops, by number of fed crops (each
#: position is fed, then its mirror): positions as ``(row, column)``, where rows are
#: ``top`` (y = 1), ``middle`` (``floor((H-S+1)/2)+1``), ``bottom`` (``H-S+1``) and
#: columns ``left``/``centre``/``right`` likewise; in feeding order.
CROP_LAYOUTS: dict[int, tuple[tuple[str, str], ...]] = {
    10: (("top", "left"), ("top", "right"), ("bottom", "left"), ("bottom", "right"), ("middle", "centre")),
    6: (("middle", "left"), ("middle", "right"), ("middle", "centre")),
    2: (("middle", "centre"),),
}


@dataclass(frozen=True)
class Protocol:
    """A named evaluation protocol: one row of :data:`PROTOCOLS`.

    ``kind`` is ``fused`` (RGB + flow net; samples at ``stride`` frames, the
    original's ``temporalStride``) or ``single`` (one stream, frames spread
    uniformly); ``samples`` frames per video; ``clip_len`` frames per clip;
    ``grouping`` ``strided`` (the original reshape) / ``consecutive`` / ``none``;
    ``crops`` 0 for the dense full frame, else a key of :data:`CROP_LAYOUTS`;
    ``streams`` the streams it may run on (``fused``, ``rgb``, ``flow``);
    ``default_for`` the net kinds it is the default of; ``batch_clips`` the clips of
    one forward pass on CPU (a GPU takes a whole video).
    """

    name: str
    kind: str
    samples: int
    clip_len: int
    grouping: str
    crops: int
    description: str
    streams: tuple[str, ...] = ("rgb", "flow")
    stride: int | None = None
    default_for: tuple[str, ...] = ()
    batch_clips: int = 2

    def allows(self, stream: str) -> bool:
        return stream in self.streams


#: The paper's temporal stride of the fused net's test samples (``max(5:15)``).
PAPER_STRIDE = 15

PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(p: Protocol) -> Protocol:
    """Add ``p`` to :data:`PROTOCOLS` (and so to ``--protocol``); refuses an unknown
    crop layout, grouping or stream, and a second protocol of one name."""
    if p.name in PROTOCOLS:
        raise ValueError(f"protocol {p.name!r} is registered already")
    if p.crops and p.crops not in CROP_LAYOUTS:
        raise ValueError(f"protocol {p.name}: no crop layout of {p.crops} crops (known: {sorted(CROP_LAYOUTS)})")
    if p.grouping not in ("strided", "consecutive", "none") or not set(p.streams) <= {"fused", "rgb", "flow"}:
        raise ValueError(f"protocol {p.name}: bad grouping {p.grouping!r} or streams {p.streams}")
    if (p.kind == "fused") != (p.streams == ("fused",)) or (p.kind == "fused" and not p.stride):
        raise ValueError(f"protocol {p.name}: a fused protocol takes streams ('fused',) and a stride")
    PROTOCOLS[p.name] = p
    return p


for _p in (
    Protocol("fusion-paper", "fused", 50, 5, "strided", 0,
             "50 samples at stride 15, clips grouped as the original reshape, full frame + flip",
             streams=("fused",), stride=PAPER_STRIDE, default_for=("fused",), batch_clips=2),
    Protocol("fusion-consecutive", "fused", 50, 5, "consecutive", 0,
             "50 samples at stride 15, 5 consecutive samples per clip, full frame + flip",
             streams=("fused",), stride=PAPER_STRIDE, batch_clips=2),
    Protocol("dense25", "single", 25, 1, "none", 0, "25 frames, full frame + flip",
             default_for=("rgb", "flow"), batch_clips=10),
    Protocol("crops10", "single", 25, 1, "none", 10, "25 frames, 4 corner + centre crops, each + flip",
             batch_clips=20),
    Protocol("crops6", "single", 25, 1, "none", 6, "25 frames, middle-row left/right + centre crops, each + flip",
             batch_clips=12),
    Protocol("crops2", "single", 25, 1, "none", 2, "25 frames, centre crop + flip (RGB only)",
             streams=("rgb",), batch_clips=4),
):
    register_protocol(_p)


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; :class:`DataError` listing the known ones otherwise."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise DataError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}") from None


def default_protocol(kind: str) -> Protocol:
    """The paper's protocol for a net of ``kind`` (``fused``, ``rgb``, ``flow``; ``single``
    is taken as ``rgb``)."""
    kind = "rgb" if kind == "single" else kind
    for p in PROTOCOLS.values():
        if kind in p.default_for:
            return p
    raise DataError(f"no protocol is the default for {kind} nets")


def check_stream(protocol: Protocol, stream: str) -> None:
    """:class:`DataError` unless ``protocol`` runs on ``stream``."""
    if not protocol.allows(stream):
        if protocol.kind == "fused" or stream == "fused":
            what = "a fused (RGB + flow) net" if protocol.kind == "fused" else "a single-stream net"
            raise DataError(f"protocol {protocol.name} is for {what}; this model is {stream}")
        names = " or ".join("RGB" if x == "rgb" else x for x in protocol.streams)
        raise DataError(f"protocol {protocol.name} is {names} only, not {stream}")


@dataclass(frozen=True)
class Clip:
    """What one forward pass sees.

    ``frames``: 1-based RGB frame numbers in feeding order; ``flow``: for each frame,
    the 1-based flow frame number of every flow channel in channel order (u, v
    interleaved; empty tuple when no flow is fed); ``flip``: mirrored horizontally
    (u inverted); ``crop``: ``(x, y, w, h)`` 0-based or None for the full frame.
    """

    frames: tuple[int, ...]
    flow: tuple[tuple[int, ...], ...]
    flip: bool
    crop: tuple[int, int, int, int] | None


@dataclass(frozen=True)
class VideoPlan:
    video: str
    label: int
    num_frames: int
    clips: tuple[Clip, ...]


def candidates_for(protocol: Protocol, stream: str, n: int, flow_channels: int = 20) -> Candidates:
    """The original's candidate frames for ``protocol`` on ``stream`` (``rgb``/``flow``/``fused``)."""
    if protocol.kind == "fused":
        return fusion_candidates(n, num=protocol.samples, stride=protocol.stride, clip_len=protocol.clip_len,
                                 stack=flow_channels)
    if stream == "rgb":
        return rgb_uniform_candidates(n, num=protocol.samples)
    if stream == "flow":
        return flow_uniform_candidates(n, num=protocol.samples, stack=flow_channels)
    raise DataError(f"stream {stream!r}: must be rgb or flow for protocol {protocol.name}")


def video_rng(seed: int, video: str) -> random.Random:
    """A generator for ``video`` that depends only on ``seed`` and the video name
    (reproducible whatever the order or subset of videos evaluated)."""
    return random.Random(f"matconv-port:{int(seed)}:{video}")


def crop_boxes(crops: int, height: int, width: int, size: int = DEFAULT_CROP) -> list[tuple[int, int, int, int]]:
    """The original ``'uniform'`` crop boxes, as 0-based ``(x, y, size, size)``."""
    if crops == 0:
        return []
    if height < size or width < size:
        raise DataError(f"frame {height}x{width} is smaller than the {size}x{size} crop")
    if crops not in CROP_LAYOUTS:
        raise DataError(f"{crops} crops: only {', '.join(str(k) for k in sorted(CROP_LAYOUTS, reverse=True))}")
    rows = {"top": 1, "bottom": height - size + 1, "middle": (height - size + 1) // 2 + 1}
    cols = {"left": 1, "right": width - size + 1, "centre": (width - size + 1) // 2 + 1}
    return [(cols[c] - 1, rows[r] - 1, size, size) for r, c in CROP_LAYOUTS[crops]]


def plan_video(
    protocol: Protocol,
    video: str,
    label: int,
    n: int,
    *,
    stream: str = "fused",
    seed: int = 0,
    frame_size: tuple[int, int] = STORED_FRAME_SIZE,
    crop_size: int = DEFAULT_CROP,
    flow_channels: int = 20,
) -> VideoPlan:
    """The clips fed for one video of ``n`` RGB frames.

    ``stream`` is ``fused`` for fused protocols, ``rgb`` or ``flow`` for single-stream
    ones. Raises :class:`DataError` naming the video when it is too short.
    """
    if protocol.kind == "fused":
        stream = "fused"
    elif stream not in ("rgb", "flow"):
        raise DataError(f"protocol {protocol.name} needs --stream {' or '.join(protocol.streams)}")
    check_stream(protocol, stream)
    try:
        cand = candidates_for(protocol, stream, n, flow_channels)
    except TooShortError as exc:
        raise DataError(f"video {video}: too short for protocol {protocol.name} ({exc})") from None
    start = cand.starts[0] if cand.deterministic else video_rng(seed, video).choice(cand.starts)
    samples = cand.window(start)
    with_flow = stream in ("fused", "flow")

    def stacks(frames: Sequence[int]) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(flow_stack(f, flow_channels)) for f in frames) if with_flow else ()

    clips: list[Clip] = []
    if protocol.kind == "fused":
        L = protocol.clip_len
        S = len(samples)
        if protocol.grouping == "strided":
            rows = 2 * S // L  # reshape(entries, [], L): column-major, clip = row
            for c in range(rows):
                entries = [c + rows * j for j in range(L)]
                flips = {e % 2 for e in entries}
                if len(flips) != 1:
                    raise DataError(f"protocol {protocol.name}: a clip would mix flipped and unflipped frames")
                frames = tuple(samples[e // 2] for e in entries)
                clips.append(Clip(frames, stacks(frames), bool(flips.pop()), None))
        else:
            for b in range(S // L):
                frames = tuple(samples[b * L:(b + 1) * L])
                for flip in (False, True):
                    clips.append(Clip(frames, stacks(frames), flip, None))
    else:
        boxes: list[tuple[int, int, int, int] | None]
        boxes = list(crop_boxes(protocol.crops, *frame_size, size=crop_size)) if protocol.crops else [None]
        for f in samples:
            st = stacks((f,))
            for box in boxes:
                for flip in (False, True):
                    clips.append(Clip((f,), st, flip, box))
    return VideoPlan(video, int(label), int(n), tuple(clips))


def plan_to_dict(plan: VideoPlan) -> dict:
    """The ``--plan-only`` JSON object of one video."""
    return {
        "video": plan.video,
        "label": plan.label,
        "num_frames": plan.num_frames,
        "clips": [
            {
                "frames": list(c.frames),
                "flow": [list(s) for s in c.flow],
                "flip": c.flip,
                "crop": list(c.crop) if c.crop is not None else None,
            }
            for c in plan.clips
        ],
    }


def write_plan_jsonl(plans: Iterable[VideoPlan], path: str) -> int:
    """Write one JSON object per line to ``path`` atomically; returns the count."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    count = 0
    with atomic_path(path, ".jsonl") as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for p in plans:
                f.write(json.dumps(plan_to_dict(p), separators=(",", ":")) + "\n")
                count += 1
    return count
