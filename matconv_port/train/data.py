"""Training data: the split's videos, reading frames and flow, assembling sub-batches.

Frames are read by :class:`~matconv_port.data.frames.FrameReader` (the layout of SPEC
section 4: ``jpegs_256/`` RGB, ``tvl1_flow/{u,v}/`` grey flow, 128 = no motion).

A sub-batch becomes MatConvNet's inputs in PyTorch layout: ``input`` (RGB,
``N x 3 x H x W``), ``input_flow`` (``N x 20 x H x W``; for a flow-only net the flow
goes to ``input``), ``N = videos x frames`` with frames fastest, values on 0..255
minus the net's per-channel mean (:func:`~matconv_port.data.average_image.channel_means`
of ``normalization.averageImage``; the fused net's 23 values are flow's 20 then RGB's 3), and ``label``
(1-based, one per video). Crops are resized with bicubic interpolation
(``cv2.INTER_CUBIC``; MATLAB's ``imresize`` default, without its antialiasing).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from matconv_port.data.average_image import average_image, channel_means
from matconv_port.data.frames import FrameReader, frame_size  # noqa: F401  (frame_size: re-exported for the loop)
from matconv_port.errors import DataError
from matconv_port.train.sampling import ClipPlan


@dataclass(frozen=True)
class TrainVideo:
    name: str
    label: int
    frames: int


def split_videos(data_root: str, split: int, dataset: str = "ucf101", splits_dir: str | None = None,
                 which: str = "train") -> tuple[list[str], list[TrainVideo]]:
    """Classes and the ``which`` (train/test) videos of a split, with their frame counts
    (``imdb.images.nFrames``). ``splits_dir`` defaults to ``DATA_ROOT/splits``."""
    from matconv_port.eval.splits import count_frames, read_split

    sd = splits_dir or os.path.join(data_root, "splits")
    sp = read_split(dataset, sd, split)
    vids = sp.train if which == "train" else sp.test
    if not vids:
        raise DataError(f"{sd}: split {split} has no {which} videos")
    return list(sp.classes), [TrainVideo(v.name, v.label, count_frames(data_root, v.name)) for v in vids]


def _augment(stack: np.ndarray, plan: ClipPlan, u_channels: list[int]) -> np.ndarray:
    """Crop, resize to ``plan.out_size`` and flip (u inverted) one ``H x W x C`` frame stack."""
    x, y, w, h = plan.crop
    hh, ww = stack.shape[:2]
    if x < 0 or y < 0 or x + w > ww or y + h > hh or w < 1 or h < 1:
        raise DataError(f"video {plan.video}: crop {plan.crop} outside a {hh} x {ww} frame")
    crop = stack[y:y + h, x:x + w].astype(np.float32)
    oh, ow = plan.out_size
    if (h, w) != (oh, ow):
        chans = [cv2.resize(crop[:, :, c:c + 4], (ow, oh), interpolation=cv2.INTER_CUBIC)
                 for c in range(0, crop.shape[2], 4)]
        chans = [c[:, :, None] if c.ndim == 2 else c for c in chans]
        crop = np.concatenate(chans, axis=2)
    if plan.flip:
        crop = crop[:, ::-1].copy()
        if u_channels:
            crop[:, :, u_channels] = 255.0 - crop[:, :, u_channels]
    return crop


def load_clip(reader: FrameReader, plan: ClipPlan, kind: str) -> np.ndarray:
    """``T x C x H x W`` float32 (0..255) for one plan: C = 3 (rgb), 20 (flow) or
    23 (fusion: flow channels first, then RGB)."""
    out = []
    for t, f in enumerate(plan.rgb_frames):
        parts = []
        u_channels: list[int] = []
        if kind in ("flow", "fusion"):
            nums = plan.flow_frames[t]
            for c, k in enumerate(nums):
                parts.append(reader.flow("u" if c % 2 == 0 else "v", plan.video, k)[:, :, None])
            u_channels = list(range(0, len(nums), 2))
        if kind in ("rgb", "fusion"):
            parts.append(reader.rgb(plan.video, f))
        stack = np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]
        out.append(_augment(stack, plan, u_channels).transpose(2, 0, 1))
    return np.stack(out)


@dataclass
class Batch:
    inputs: dict[str, torch.Tensor]
    num_videos: int


class BatchAssembler:
    """Turns sub-batch plans into network inputs (threads decode and augment)."""

    def __init__(self, data_root: str, kind: str, meta: dict, input_names: dict[str, str], *, cache: int = 0,
                 threads: int = 2):
        self.kind = kind
        self.reader = FrameReader(data_root, cache)
        channels = {"rgb": 3, "flow": 20, "fusion": 23}[kind]
        self.mean = channel_means(average_image(meta), channels).astype(np.float32)
        self.input_names = input_names  # {"rgb": "input", "flow": "input_flow"}
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def assemble(self, plans: list[ClipPlan]) -> Batch:
        clips = list(self.pool.map(lambda p: load_clip(self.reader, p, self.kind), plans))
        data = np.concatenate(clips, axis=0)  # (videos*frames) x C x H x W, frames fastest
        data -= self.mean.reshape(1, -1, 1, 1)
        t = torch.from_numpy(np.ascontiguousarray(data))
        inputs: dict[str, torch.Tensor] = {}
        if self.kind == "fusion":
            inputs[self.input_names["flow"]] = t[:, :20].contiguous()
            inputs[self.input_names["rgb"]] = t[:, 20:].contiguous()
        else:
            inputs[self.input_names[self.kind]] = t
        inputs["label"] = torch.tensor([p.label for p in plans], dtype=torch.float32)
        return Batch(inputs, len(plans))

    def submit(self, plans: list[ClipPlan]):
        """Assemble in the background; ``.result()`` gives the :class:`Batch`."""
        return _Deferred(self, plans)


class _Deferred:
    def __init__(self, asm: BatchAssembler, plans: list[ClipPlan]):
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._fut = self._pool.submit(asm.assemble, plans)

    def result(self) -> Batch:
        try:
            return self._fut.result()
        finally:
            self._pool.shutdown(wait=False)
