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
  needed the original calls MATLAB ``imresize`` (bicubic, a = -0.5, antialiased when
  shrinking); here ``cv2.resize`` bicubic (a = -0.75) on float32: close, not
  bit-identical.) Crop mode takes ``S x S`` boxes of the stored frame.
* Mean subtraction after flipping: the per-channel mean of
  ``meta.normalization.averageImage`` (``mean(mean(avg, 1), 2)``); for the fused
  net 20 flow means then 3 RGB means. In crop mode a full ``S x S`` mean image is
  subtracted pixel-wise, as the original's ``bsxfun`` does.

Work is split into :class:`Chunk` s (clips that share decoded images: a clip and its
mirror; all crops of a frame), which :class:`VideoChunkDataset` assembles in
``DataLoader`` worker processes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from matconv_port.data.frames import FrameReader, decode_jpeg, flow_path, read_jpeg, rgb_path  # noqa: F401  (re-exported)
from matconv_port.errors import DataError
from matconv_port.eval.plan import Clip, VideoPlan
from matconv_port.eval.slot_pool import SlotPool, SlotRef, shared_empty, slot_views

__all__ = [
    "Normalization",
    "Chunk",
    "rgb_path",
    "flow_path",
    "read_jpeg",
    "dense_size",
    "assemble_clip",
    "gather_clip",
    "normalize",
    "make_chunks",
    "VideoChunkDataset",
    "ChunkResult",
    "collate_single",
]

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


def clip_geometry(clip: Clip, shapes: Sequence[tuple[int, int]], norm: Normalization) -> tuple[int, int, int, int, bool]:
    """``(h_min, w_min, out_h, out_w, resize)`` for a clip whose images have ``shapes``."""
    h_min = min(s[0] for s in shapes)
    w_min = min(s[1] for s in shapes)
    if clip.crop is None:
        th, tw = dense_size(h_min, w_min, norm.input_size)
        return h_min, w_min, th, tw, (th, tw) != (h_min, w_min)
    return h_min, w_min, clip.crop[3], clip.crop[2], False


def gather_clip(
    clip: Clip,
    get_rgb: Callable[[int], np.ndarray] | None,
    get_flow: Callable[[str, int], np.ndarray] | None,
    norm: Normalization,
    out: Callable[[str, tuple[int, ...], type], np.ndarray] | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Stage 1 of assembly (done in workers): ``(rgb, flow)`` arrays ``T x 3 x H x W`` and
    ``T x F x H x W`` with crop, flip and ``u -> 255 - u`` applied, NOT mean-subtracted;
    uint8 (exact), or float32 when a dense-mode resize was needed. Either is None when
    the net takes no such stream.

    ``get_rgb(frame)`` returns an ``H x W x 3`` RGB uint8 image (a view is fine),
    ``get_flow(axis, k)`` an ``H x W`` uint8 flow image (``axis`` ``'u'``/``'v'``).
    Frames whose sizes differ are cut to the smallest (top-left), as the original does.
    ``out(kind, shape, dtype)`` allocates the outputs (``kind`` ``'rgb'``/``'flow'``;
    default ``np.empty``).
    """
    alloc = out or (lambda kind, shape, dtype: np.empty(shape, dtype))
    T = len(clip.frames)
    want_rgb = norm.rgb_mean is not None and get_rgb is not None
    want_flow = norm.flow_mean is not None and get_flow is not None
    if want_flow and (not clip.flow or len(clip.flow[0]) != norm.flow_channels):
        raise DataError(f"clip has {len(clip.flow[0]) if clip.flow else 0} flow channels, the net takes {norm.flow_channels}")
    rgb_imgs = [get_rgb(f) for f in clip.frames] if want_rgb else []
    flow_imgs = [[get_flow("u" if c % 2 == 0 else "v", k) for c, k in enumerate(st)] for st in clip.flow] if want_flow else []
    shapes = [im.shape[:2] for im in rgb_imgs] + [im.shape[:2] for st in flow_imgs for im in st]
    h_min, w_min, th, tw, resize = clip_geometry(clip, shapes, norm)
    dtype = np.float32 if resize else np.uint8

    def prep(img: np.ndarray) -> np.ndarray:
        if img.shape[0] != h_min or img.shape[1] != w_min:
            img = img[:h_min, :w_min]
        if resize:
            img = cv2.resize(np.ascontiguousarray(img, dtype=np.float32), (tw, th), interpolation=cv2.INTER_CUBIC)
        return _take(img, clip.crop, clip.flip)

    rgb_out = None
    if want_rgb:
        rgb_out = alloc("rgb", (T, 3, th, tw), dtype)
        for t, img in enumerate(rgb_imgs):
            np.copyto(rgb_out[t], prep(img).transpose(2, 0, 1), casting="unsafe")
    flow_out = None
    if want_flow:
        flow_out = alloc("flow", (T, norm.flow_channels, th, tw), dtype)
        for t, stack in enumerate(flow_imgs):
            for c, img in enumerate(stack):
                if clip.flip and c % 2 == 0:
                    np.subtract(dtype(255), prep(img), out=flow_out[t, c], casting="unsafe")
                else:
                    np.copyto(flow_out[t, c], prep(img), casting="unsafe")
    return rgb_out, flow_out


_DEVICE_MEANS: dict[tuple[int, str], tuple[np.ndarray, torch.Tensor]] = {}


def _mean_on(mean: np.ndarray, device: torch.device, image: bool) -> torch.Tensor:
    """``mean`` as a float32 tensor on ``device`` (``C x 1 x 1``, or as it is for a mean
    image), copied there once per array and device: a copy from pageable host memory
    would make a CUDA stream wait for all work queued before it."""
    key = (id(mean), f"{device}:{int(image)}")
    hit = _DEVICE_MEANS.get(key)
    if hit is None or hit[0] is not mean:
        m = torch.as_tensor(np.asarray(mean, np.float32))
        m = (m if image else m[:, None, None]).to(device)
        if len(_DEVICE_MEANS) > 64:
            _DEVICE_MEANS.clear()
        hit = _DEVICE_MEANS[key] = (mean, m)  # the array is kept: its id stays its own
    return hit[1]


def normalize(x: torch.Tensor | np.ndarray, mean: np.ndarray, mean_image: np.ndarray | None = None,
              cropped: bool = False) -> torch.Tensor:
    """Stage 2 (on the model's device): float32 ``x - mean`` over the channel axis
    (``-3``). In crop mode a mean image of the crop's size is subtracted pixel-wise
    (not mirrored for flipped crops: the original subtracts after flipping)."""
    t = torch.as_tensor(x)
    t = t.to(torch.float32) if t.dtype != torch.float32 else t.clone()
    return t.sub_(_mean_for(t, mean, mean_image, cropped))


def _mean_for(t: torch.Tensor, mean: np.ndarray, mean_image: np.ndarray | None, cropped: bool) -> torch.Tensor:
    if cropped and mean_image is not None and tuple(mean_image.shape[1:]) == tuple(t.shape[-2:]):
        return _mean_on(mean_image, t.device, True)
    return _mean_on(mean, t.device, False)


def assemble_clip(
    clip: Clip,
    get_rgb: Callable[[int], np.ndarray] | None,
    get_flow: Callable[[str, int], np.ndarray] | None,
    norm: Normalization,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Assemble one clip: ``(rgb, flow)`` float32 arrays ``T x 3 x H x W`` and
    ``T x F x H x W``, mean-subtracted (:func:`gather_clip` then :func:`normalize`)."""
    rgb, flow = gather_clip(clip, get_rgb, get_flow, norm)
    cropped = clip.crop is not None
    return (normalize(rgb, norm.rgb_mean, norm.rgb_mean_image, cropped).numpy() if rgb is not None else None,
            normalize(flow, norm.flow_mean, norm.flow_mean_image, cropped).numpy() if flow is not None else None)


@dataclass
class ChunkResult:
    """What a worker returns for a chunk.

    ``rgb`` / ``flow``: the chunk's distinct unflipped views (``bases x T x C x H x W``,
    from :func:`gather_clip`: uint8, or float32 after a resize; not mean-subtracted);
    clip ``j`` of the chunk is base ``base_index[j]``, mirrored when ``flips[j]``.
    Mirrors (and ``u -> 255 - u``) and mean subtraction are applied on the model's
    device by :meth:`normalized`, which halves what workers copy and send.
    ``error``: the one-line error that stopped the chunk.

    When the tensors live in a slot of a :class:`~matconv_port.eval.slot_pool.SlotPool`
    (``slot`` set), only the slot number travels between processes, and the consumer
    calls :meth:`release` once it has read them (:meth:`normalized` copies): the
    worker writes its next chunks there again.
    """

    video_index: int
    clip_indices: tuple[int, ...]
    rgb: torch.Tensor | None
    flow: torch.Tensor | None
    error: str | None = None
    cropped: bool = False
    base_index: tuple[int, ...] = ()
    flips: tuple[bool, ...] = ()
    slot: int | None = None
    pool: SlotPool | None = field(default=None, repr=False, compare=False)

    def __reduce__(self):
        meta = (self.video_index, self.clip_indices, self.error, self.cropped, self.base_index, self.flips)
        if self.pool is None or self.slot is None:
            return _rebuild_chunk_result, (meta, self.rgb, self.flow, None)
        specs: list = []
        for t in (self.rgb, self.flow):
            if t is None or not self.pool.holds(t):
                specs.append(t)  # None, or a tensor outside the pool: travels as itself
            else:
                offset = t.storage_offset() * t.element_size() - self.slot * self.pool.slot_bytes
                specs.append((offset, tuple(t.shape), str(t.dtype).removeprefix("torch.")))
        return _rebuild_chunk_result, (meta, None, None, SlotRef((self.pool.pool_id, self.slot, specs)))

    def release(self) -> None:
        """Done with :attr:`rgb` / :attr:`flow`: give their slot back (they become
        None); nothing to do for tensors outside a pool."""
        if self.pool is not None and self.slot is not None:
            self.rgb = self.flow = None
            self.pool.release(self.slot)
            self.slot = None

    def pin_memory(self) -> "ChunkResult":
        """Called by ``DataLoader(pin_memory=True)`` (CUDA runs): pinned copies, and the
        slot goes back to its worker at once."""
        rgb = self.rgb.pin_memory() if self.rgb is not None else None
        flow = self.flow.pin_memory() if self.flow is not None else None
        self.release()
        self.rgb, self.flow = rgb, flow
        return self

    def normalized(self, norm: Normalization, device: torch.device | str = "cpu") -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``clips x T x C x H x W`` float32 tensors on ``device``: mirrored where the
        clip says so (u inverted: ``255 - u``), then mean-subtracted (as
        :func:`normalize`). They never share memory with :attr:`rgb` / :attr:`flow`.

        Everything after the one host-to-device copy (``non_blocking``: asynchronous
        from pinned memory) runs on ``device`` without waiting for it: clips are
        taken by plain indexing (an index tensor built on the host would be a
        synchronising copy), the means are on the device already (:func:`_mean_on`).
        The values equal the uint8 path's: ``255 - u`` and the conversion of
        integers 0..255 are exact in float32.
        """
        out = []
        idx = list(self.base_index) or list(range(len(self.clip_indices)))
        flips = list(self.flips) or [False] * len(idx)
        for t, mean, image, is_flow in ((self.rgb, norm.rgb_mean, norm.rgb_mean_image, False),
                                        (self.flow, norm.flow_mean, norm.flow_mean_image, True)):
            if t is None:
                out.append(None)
                continue
            t = t.to(device, non_blocking=True)
            clips = torch.empty((len(idx), *t.shape[1:]), dtype=torch.float32, device=t.device)
            for j, (b, flip) in enumerate(zip(idx, flips)):
                clips[j].copy_(t[b].flip(-1) if flip else t[b])
                if flip and is_flow:
                    clips[j, :, 0::2].neg_().add_(255.0)  # 255 - u (neg is exact: one rounding)
            out.append(clips.sub_(_mean_for(clips, mean, image, self.cropped)))
        return out[0], out[1]


def _rebuild_chunk_result(meta: tuple, rgb: torch.Tensor | None, flow: torch.Tensor | None,
                          ref: SlotRef | None) -> ChunkResult:
    video_index, clip_indices, error, cropped, base_index, flips = meta
    if ref is None:
        return ChunkResult(video_index, clip_indices, rgb, flow, error, cropped, base_index, flips)
    pool, (rgb, flow) = slot_views(ref)
    return ChunkResult(video_index, clip_indices, rgb, flow, error, cropped, base_index, flips, ref[1], pool)


def _base_key(clip: Clip) -> tuple:
    """What makes a clip's unflipped view: clips equal in it share decoded data."""
    return (clip.frames, clip.flow, clip.crop)


def _shared_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A tensor allocated directly in shared memory when running in a DataLoader
    worker (no copy when it is sent to the main process)."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    return shared_empty(shape, dtype)


class VideoChunkDataset(Dataset):
    """Chunks of clips of many videos, each item decoded and assembled in a worker.

    ``plans[i]`` is the plan of video ``i``; ``chunks`` the work items in order;
    ``root`` the data root, read by a :class:`~matconv_port.data.frames.FrameReader`
    keeping ``cache_size`` decoded images. Errors (missing or
    unreadable frames) come back in :attr:`ChunkResult.error` instead of raising, so
    a run can skip a video. Outputs are uint8 (4x less to move between processes than
    float32); mean subtraction happens on the model's device
    (:meth:`ChunkResult.normalized`).
    """

    def __init__(self, root: str, plans: Sequence[VideoPlan], chunks: Sequence[Chunk], norm: Normalization,
                 cache_size: int = 64):
        self.root = root
        self.plans = list(plans)
        self.chunks = list(chunks)
        self.norm = norm
        self.frames = FrameReader(root, cache_size)
        self.pool: SlotPool | None = None

    def __len__(self) -> int:
        return len(self.chunks)

    def chunk_uint8_bytes(self, frame_hw: tuple[int, int]) -> int:
        """The most bytes one chunk's uint8 tensors take for frames of ``frame_hw``
        (chunks resized to float32 in dense mode count 0: they never use a slot)."""
        most = 0
        channels = (3 if self.norm.rgb_mean is not None else 0) + self.norm.flow_channels
        for chunk in self.chunks:
            plan = self.plans[chunk.video_index]
            bases = {_base_key(plan.clips[c]) for c in chunk.clip_indices}
            total = 0
            for frames, _, crop in bases:
                if crop is None:
                    h, w = dense_size(*frame_hw, self.norm.input_size)
                    if (h, w) != tuple(frame_hw):
                        continue
                else:
                    w, h = crop[2], crop[3]
                total += len(frames) * channels * h * w
            most = max(most, total)
        return most

    def use_slot_pool(self, num_workers: int, slots_per_worker: int) -> SlotPool | None:
        """Allocate the :class:`SlotPool` the workers will reuse (call before iterating a
        ``DataLoader`` with ``num_workers`` workers; ``slots_per_worker`` at least its
        ``prefetch_factor + 1``). Slots are sized for the first frame of the first chunk;
        a chunk that does not fit falls back to a fresh shared tensor. None (no pool)
        without workers or chunks, or when that frame cannot be read (the worker will
        report it)."""
        self.pool = None
        if num_workers <= 0 or not self.chunks:
            return None
        plan = self.plans[self.chunks[0].video_index]
        clip = plan.clips[self.chunks[0].clip_indices[0]]
        try:
            if self.norm.rgb_mean is not None:
                hw = decode_jpeg(rgb_path(self.root, plan.video, clip.frames[0]), False).shape[:2]
            elif clip.flow:
                hw = decode_jpeg(flow_path(self.root, "u", plan.video, clip.flow[0][0]), True).shape[:2]
            else:
                return None
        except DataError:
            return None
        nbytes = self.chunk_uint8_bytes(hw)
        if nbytes > 0:
            self.pool = SlotPool(num_workers, slots_per_worker, nbytes)
        return self.pool

    def __getitem__(self, i: int) -> ChunkResult:
        chunk = self.chunks[i]
        plan = self.plans[chunk.video_index]
        video = plan.video
        get_rgb = (lambda f: self.frames.rgb(video, f)) if self.norm.rgb_mean is not None else None
        get_flow = (lambda a, k: self.frames.flow(a, video, k)) if self.norm.flow_mean is not None else None
        clips = [plan.clips[c] for c in chunk.clip_indices]
        keys: list[tuple] = []
        base_index = []
        for clip in clips:
            key = _base_key(clip)
            if key not in keys:
                keys.append(key)
            base_index.append(keys.index(key))
        n = len(keys)
        stacked: dict[str, torch.Tensor] = {}
        info = get_worker_info()
        slot: list[int | None] = [None, 0]  # slot acquired, bytes used in it

        def new_tensor(shape: tuple[int, ...], tdtype: torch.dtype) -> torch.Tensor:
            if self.pool is not None and info is not None and tdtype == torch.uint8:
                nbytes = int(np.prod(shape))
                if slot[0] is None and nbytes <= self.pool.slot_bytes:
                    slot[0] = self.pool.acquire(info.id)
                if slot[0] is not None and slot[1] + nbytes <= self.pool.slot_bytes:
                    t = self.pool.slot_tensor(slot[0], slot[1], shape, tdtype)
                    slot[1] += nbytes
                    return t
            return _shared_empty(shape, tdtype)

        try:
            for j, (frames, flow, crop) in enumerate(keys):

                def alloc(kind: str, shape: tuple[int, ...], dtype, j: int = j) -> np.ndarray:
                    tdtype = torch.uint8 if dtype == np.uint8 else torch.float32
                    t = stacked.get(kind)
                    if t is None:
                        t = stacked[kind] = new_tensor((n, *shape), tdtype)
                    elif tuple(t.shape[1:]) != tuple(shape) or t.dtype != tdtype:
                        raise DataError(f"video {video}: clips of one batch differ in frame size ({tuple(t.shape[1:])} vs {tuple(shape)})")
                    return t[j].numpy()

                gather_clip(Clip(frames, flow, False, crop), get_rgb, get_flow, self.norm, out=alloc)
        except DataError as exc:
            if slot[0] is not None:
                self.pool.release(slot[0])
            return ChunkResult(chunk.video_index, chunk.clip_indices, None, None, str(exc))
        rgb, flow = stacked.get("rgb"), stacked.get("flow")
        used = slot[0] if slot[1] > 0 else None
        if slot[0] is not None and used is None:
            self.pool.release(slot[0])
        return ChunkResult(chunk.video_index, chunk.clip_indices, rgb, flow, None,
                           clips[0].crop is not None, tuple(base_index), tuple(c.flip for c in clips),
                           used, self.pool if used is not None else None)


def collate_single(items: list[ChunkResult]) -> ChunkResult:
    """``DataLoader`` collate for ``batch_size=1``: the item itself."""
    return items[0]
