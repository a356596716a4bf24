"""Batch assembly: JPEG frames -> mean-subtracted ``N x C x H x W`` network inputs.

What the original getBatch functions do (``cnn_ucf101_get_im_flow_batch.m``,
``_frame_batch.m``, ``_flow_batch.m``), reproduced here:

* RGB frames ``jpegs_256/<video>/frame%06d.jpg`` are decoded to R, G, B channel order
  (OpenCV's BGR is reordered); flow frames ``tvl1_flow/u|v/<video>/frame%06d.jpg`` are
  single grey channels.
* A flow stack for a sample at RGB frame ``f`` holds channels
  ``u_{f-5}, v_{f-5}, ..., u_{f+4}, v_{f+4}`` (u and v interleaved, 20 channels). The
  fused net's input is flow channels first, then RGB (23 channels); it is split into
  the net's ``input_flow`` (20) and ``input`` (3) vars.
* A horizontal flip mirrors every channel and inverts u: ``u -> 255 - u``.
* Dense mode (``augmentation = 'none'``) feeds the whole frame; it is resized only when
  its size falls outside ``[S, 2S]`` per side (``S`` the net's input size), so the
  stored 256 x 340 frames are fed as they are for ``S = 224``. (When a resize is
  needed the original calls MATLAB ``imresize``; here ``cv2.resize`` bilinear, which
  is not bit-identical.) Crop mode takes ``S x S`` boxes of the stored frame.
* Mean subtraction after flipping: the per-channel mean of
  ``meta.normalization.averageImage`` (``mean(mean(avg, 1), 2)``); for the fused
  net 20 flow means then 3 RGB means. In crop mode a full ``S x S`` mean image is
  subtracted pixel-wise, as the original's ``bsxfun`` does.

Work is split into :class:`Chunk` s (clips that share decoded images: a clip and its
mirror; all crops of a frame), which :class:`VideoChunkDataset` assembles in
``DataLoader`` worker processes.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from matconv_port.errors import DataError
from matconv_port.eval.plan import Clip, VideoPlan

__all__ = [
    "Normalization",
    "Chunk",
    "rgb_path",
    "flow_path",
    "read_jpeg",
    "dense_size",
    "assemble_clip",
    "make_chunks",
    "VideoChunkDataset",
    "ChunkResult",
    "collate_single",
]

Reader = Callable[[str, bool], np.ndarray]


def rgb_path(root: str, video: str, frame: int) -> str:
    """``root/jpegs_256/<video>/frame%06d.jpg`` (1-based frame number)."""
    return os.path.join(root, "jpegs_256", video, f"frame{frame:06d}.jpg")


def flow_path(root: str, axis: str, video: str, frame: int) -> str:
    """``root/tvl1_flow/<u|v>/<video>/frame%06d.jpg`` (1-based flow frame number)."""
    return os.path.join(root, "tvl1_flow", axis, video, f"frame{frame:06d}.jpg")


def read_jpeg(path: str, grey: bool) -> np.ndarray:
    """Decode a JPEG: ``H x W`` uint8 for ``grey``, else ``H x W x 3`` uint8 in RGB order.

    Raises :class:`DataError` naming the file when it is missing or unreadable.
    """
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: frame missing") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read frame ({exc.strerror})") from None
    img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise DataError(f"{path}: not a readable JPEG image")
    if not grey:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


@dataclass(frozen=True)
class Normalization:
    """Per-channel means and input size of a net.

    ``rgb_mean`` (3,) and ``flow_mean`` (flow channels,) float32, or None for a
    stream the net does not take; ``input_size`` ``S`` of ``imageSize(1:2)`` (square
    assumed, ``(h, w)``); ``rgb_mean_image`` / ``flow_mean_image`` ``C x S x S`` when the
    model's averageImage is a full image (used pixel-wise in crop mode only).
    """

    rgb_mean: np.ndarray | None
    flow_mean: np.ndarray | None
    input_size: tuple[int, int] = (224, 224)
    rgb_mean_image: np.ndarray | None = None
    flow_mean_image: np.ndarray | None = None

    @property
    def flow_channels(self) -> int:
        return 0 if self.flow_mean is None else int(self.flow_mean.shape[0])


def dense_size(h: int, w: int, input_size: tuple[int, int]) -> tuple[int, int]:
    """Size the original dense mode feeds: ``min(2*S, max(S, [h w]))`` per side."""
    sh, sw = input_size
    return (min(2 * sh, max(sh, h)), min(2 * sw, max(sw, w)))


@dataclass(frozen=True)
class Chunk:
    """Clips of one video assembled together (they share decoded images)."""

    video_index: int
    clip_indices: tuple[int, ...]


def make_chunks(video_index: int, plan: VideoPlan, clips_per_chunk: int) -> list[Chunk]:
    """Split a video's clips into chunks of at most ``clips_per_chunk`` consecutive clips
    (at least 1)."""
    n = len(plan.clips)
    step = max(1, int(clips_per_chunk))
    return [Chunk(video_index, tuple(range(i, min(n, i + step)))) for i in range(0, n, step)]


def _take(img: np.ndarray, crop: tuple[int, int, int, int] | None, flip: bool) -> np.ndarray:
    if crop is not None:
        x, y, w, h = crop
        if y + h > img.shape[0] or x + w > img.shape[1]:
            raise DataError(f"crop {list(crop)} does not fit a {img.shape[0]}x{img.shape[1]} frame")
        img = img[y:y + h, x:x + w]
    if flip:
        img = img[:, ::-1]
    return img


def _sub(dst: np.ndarray, src: np.ndarray, mean, invert: bool) -> None:
    """``dst = src - mean`` or ``dst = (255 - src) - mean`` in float32."""
    if invert:
        np.subtract(np.float32(255.0) - mean, src, out=dst, dtype=np.float32)
    else:
        np.subtract(src, mean, out=dst, dtype=np.float32)


def assemble_clip(
    clip: Clip,
    get_rgb: Callable[[int], np.ndarray] | None,
    get_flow: Callable[[str, int], np.ndarray] | None,
    norm: Normalization,
    out_rgb: np.ndarray | None = None,
    out_flow: np.ndarray | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Assemble one clip: ``(rgb, flow)`` arrays ``T x 3 x H x W`` and ``T x F x H x W``
    (float32, mean-subtracted), either None when the net takes no such stream.

    ``get_rgb(frame)`` returns an ``H x W x 3`` RGB uint8 image, ``get_flow(axis, k)``
    an ``H x W`` uint8 flow image (``axis`` ``'u'``/``'v'``). Frames whose sizes differ
    are cut to the smallest (top-left), as the original does.
    """
    T = len(clip.frames)
    want_rgb = norm.rgb_mean is not None and get_rgb is not None
    want_flow = norm.flow_mean is not None and get_flow is not None
    if want_flow and (not clip.flow or len(clip.flow[0]) != norm.flow_channels):
        raise DataError(f"clip has {len(clip.flow[0]) if clip.flow else 0} flow channels, the net takes {norm.flow_channels}")
    rgb_imgs = [get_rgb(f) for f in clip.frames] if want_rgb else []
    flow_imgs = [[get_flow("u" if c % 2 == 0 else "v", k) for c, k in enumerate(st)] for st in clip.flow] if want_flow else []
    shapes = [im.shape[:2] for im in rgb_imgs] + [im.shape[:2] for st in flow_imgs for im in st]
    h_min = min(s[0] for s in shapes)
    w_min = min(s[1] for s in shapes)
    if clip.crop is None:
        th, tw = dense_size(h_min, w_min, norm.input_size)
    else:
        th, tw = clip.crop[3], clip.crop[2]

    def prep(img: np.ndarray) -> np.ndarray:
        if img.shape[0] != h_min or img.shape[1] != w_min:
            img = img[:h_min, :w_min]
        if clip.crop is None and (th, tw) != (h_min, w_min):
            img = cv2.resize(np.ascontiguousarray(img), (tw, th), interpolation=cv2.INTER_LINEAR)
        return _take(img, clip.crop, clip.flip)

    def mean_for(vec: np.ndarray, image: np.ndarray | None, c: int):
        if clip.crop is not None and image is not None and image.shape[1:] == (th, tw):
            m = image[c]
            return m[:, ::-1] if clip.flip else m
        return vec[c]

    rgb_out = None
    if want_rgb:
        rgb_out = out_rgb if out_rgb is not None else np.empty((T, 3, th, tw), np.float32)
        for t, img in enumerate(rgb_imgs):
            img = prep(img)
            for c in range(3):
                _sub(rgb_out[t, c], img[:, :, c], mean_for(norm.rgb_mean, norm.rgb_mean_image, c), False)
    flow_out = None
    if want_flow:
        F = norm.flow_channels
        flow_out = out_flow if out_flow is not None else np.empty((T, F, th, tw), np.float32)
        for t, stack in enumerate(flow_imgs):
            for c, img in enumerate(stack):
                _sub(flow_out[t, c], prep(img), mean_for(norm.flow_mean, norm.flow_mean_image, c),
                     clip.flip and c % 2 == 0)
    return rgb_out, flow_out


@dataclass
class ChunkResult:
    """What a worker returns for a chunk: tensors ``clips x T x C x H x W`` (or None)
    or the one-line error that stopped it."""

    video_index: int
    clip_indices: tuple[int, ...]
    rgb: torch.Tensor | None
    flow: torch.Tensor | None
    error: str | None = None


class VideoChunkDataset(Dataset):
    """Chunks of clips of many videos, each item decoded and assembled in a worker.

    ``plans[i]`` is the plan of video ``i``; ``chunks`` the work items in order;
    ``root`` the data root; ``reader(path, grey)`` decodes an image (default
    :func:`read_jpeg`). Errors (missing or unreadable frames) come back in
    :attr:`ChunkResult.error` instead of raising, so a run can skip a video.
    """

    def __init__(self, root: str, plans: Sequence[VideoPlan], chunks: Sequence[Chunk], norm: Normalization,
                 reader: Reader | None = None, cache_size: int = 64):
        self.root = root
        self.plans = list(plans)
        self.chunks = list(chunks)
        self.norm = norm
        self.reader = reader or read_jpeg
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.chunks)

    def _read(self, path: str, grey: bool) -> np.ndarray:
        img = self._cache.get(path)
        if img is None:
            img = self.reader(path, grey)
            self._cache[path] = img
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(path)
        return img

    def __getitem__(self, i: int) -> ChunkResult:
        chunk = self.chunks[i]
        plan = self.plans[chunk.video_index]
        video = plan.video
        get_rgb = (lambda f: self._read(rgb_path(self.root, video, f), False)) if self.norm.rgb_mean is not None else None
        get_flow = (lambda a, k: self._read(flow_path(self.root, a, video, k), True)) if self.norm.flow_mean is not None else None
        try:
            parts = [assemble_clip(plan.clips[c], get_rgb, get_flow, self.norm) for c in chunk.clip_indices]
            shapes = {(p[0].shape[2:] if p[0] is not None else p[1].shape[2:]) for p in parts}
            if len(shapes) != 1:
                raise DataError(f"video {video}: clips of one batch have different frame sizes {sorted(shapes)}")
        except DataError as exc:
            return ChunkResult(chunk.video_index, chunk.clip_indices, None, None, str(exc))
        rgb = torch.from_numpy(np.stack([p[0] for p in parts])) if parts[0][0] is not None else None
        flow = torch.from_numpy(np.stack([p[1] for p in parts])) if parts[0][1] is not None else None
        return ChunkResult(chunk.video_index, chunk.clip_indices, rgb, flow)


def collate_single(items: list[ChunkResult]) -> ChunkResult:
    """``DataLoader`` collate for ``batch_size=1``: the item itself."""
    return items[0]
