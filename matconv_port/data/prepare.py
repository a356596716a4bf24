"""Preparing a folder of videos: frames, flow and split lists, in parallel and resumable.

For every video (``<video>`` = file name without extension) :func:`prepare_video`
writes ``n`` resized RGB frames and ``n - 1`` flow fields through
:class:`~matconv_port.data.writers.VideoOutput` (see :mod:`.writers` for the layout),
then the done-marker. :func:`prepare_videos` runs it over a folder with a process pool:

* finished videos (done-marker present) are skipped unless ``force``;
* an interrupted video (no marker) is redone from scratch;
* a video that fails (unreadable, corrupt, fewer than 2 frames) gives ONE line
  naming the file and the others continue; the summary lists every failure.
"""
from __future__ import annotations

import multiprocessing
import shutil
import signal
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2

from matconv_port.data.flow import BATCHED_FLOW_METHODS, FLOW_METHODS, create_flow, to_gray
from matconv_port.data.splits import check_split_options, splits_from_classes
from matconv_port.data.video_io import DEFAULT_SHORT_SIDE, find_videos, is_video_file, iter_frames
from matconv_port.data.writers import JPEG_QUALITY, VideoOutput, is_done, read_done_marker, video_dirs
from matconv_port.errors import DataError, MatConvPortError


@dataclass
class VideoResult:
    """Outcome of one video: ``status`` is ``"done"``, ``"skipped"`` (already done) or ``"failed"``."""

    video: str
    source: str
    status: str
    frames: int = 0
    error: str | None = None
    seconds: float = 0.0


@dataclass
class PrepareSummary:
    """All per-video results of a run, plus the split files written (if any)."""

    out_root: str
    results: list[VideoResult] = field(default_factory=list)
    split_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def _with(self, status: str) -> list[VideoResult]:
        return [r for r in self.results if r.status == status]

    @property
    def done(self) -> list[VideoResult]:
        return self._with("done")

    @property
    def skipped(self) -> list[VideoResult]:
        return self._with("skipped")

    @property
    def failed(self) -> list[VideoResult]:
        return self._with("failed")

    def lines(self) -> list[str]:
        """Human-readable summary: one count line, then one line per failed video."""
        out = [
            f"prepared {len(self.done)} video(s), skipped {len(self.skipped)} already done, "
            f"{len(self.failed)} failed; output in {self.out_root}"
        ]
        out += [f"note: {n}" for n in self.notes]
        out += [f"failed: {r.error}" for r in self.failed]
        if self.split_files:
            out.append("split lists: " + ", ".join(self.split_files))
        return out


class FlowOutOfMemory(MatConvPortError):
    """The GPU ran out of memory for one batch of frame pairs: the run stops (every other
    video would fail the same way); the message names ``--batch-pairs``."""


#: Frame pairs per batch on CPU when ``--batch-pairs`` is not given.
CPU_BATCH_PAIRS = 8
#: Upper bound of the automatic batch on a GPU (more gains nothing once the GPU is busy).
MAX_AUTO_BATCH_PAIRS = 256
#: Bytes of GPU memory one frame pair needs per pixel: the peak of ``tvl1_flow`` (the finest
#: level's state, its 5x5 median network, the pyramid) measured ~320 on CPU (8 pairs of
#: 256x340, peak RSS), plus headroom.
BYTES_PER_PAIR_PIXEL = 400


def auto_batch_pairs(device, height: int, width: int) -> int:
    """How many frame pairs of ``height x width`` go at once on ``device`` by default:
    on CUDA, 40 % of the free memory (other processes may share the GPU) divided by the
    memory of one pair, between 1 and :data:`MAX_AUTO_BATCH_PAIRS`; on CPU
    :data:`CPU_BATCH_PAIRS`."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return CPU_BATCH_PAIRS
    free, _total = torch.cuda.mem_get_info(device)
    return int(max(1, min(MAX_AUTO_BATCH_PAIRS, 0.4 * free // (BYTES_PER_PAIR_PIXEL * height * width))))


class _BatchedFlow:
    """Collects grey frames of one video and writes the flow of ``batch_pairs`` consecutive
    pairs at a time through :meth:`VideoOutput.add_flow` (the one quantise/write path)."""

    def __init__(self, method: str, device, batch_pairs: int | None):
        self.flow = create_flow(method, device)
        self.device = device
        self.batch_pairs = batch_pairs
        self.grays: list = []

    def add(self, gray, out: VideoOutput) -> None:
        self.grays.append(gray)
        if self.batch_pairs is None:
            self.batch_pairs = auto_batch_pairs(self.device, *gray.shape[:2])
        if len(self.grays) > self.batch_pairs:
            self.flush(out)

    def flush(self, out: VideoOutput) -> None:
        import numpy as np
        import torch

        if len(self.grays) < 2:
            return
        stack = np.stack(self.grays)
        try:
            flows = self.flow.pairs(stack[:-1], stack[1:])
        except torch.OutOfMemoryError:
            h, w = stack.shape[1:3]
            raise FlowOutOfMemory(
                f"{self.device}: out of GPU memory computing TV-L1 for {len(stack) - 1} frame pairs of {w}x{h} at once; "
                f"use a smaller --batch-pairs (e.g. --batch-pairs {max(1, (len(stack) - 1) // 2)})") from None
        for f in flows:
            out.add_flow(f)
        self.grays = self.grays[-1:]


def _one_line(exc: BaseException, source: str) -> str:
    if isinstance(exc, MatConvPortError):
        return str(exc)
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{source}: {type(exc).__name__}: {text}"


def prepare_video(
    source: str | Path,
    out_root: str | Path,
    video: str | None = None,
    flow: str = "tvl1",
    short_side: int | None = DEFAULT_SHORT_SIDE,
    jpeg_quality: int = JPEG_QUALITY,
    device: str = "cpu",
    batch_pairs: int | None = None,
) -> VideoResult:
    """Decode ``source`` and write its frames and flow under ``out_root`` as ``video``
    (default: the file name without extension). Never raises for a bad video: the
    error is returned as one line in ``VideoResult.error``; only :class:`FlowOutOfMemory`
    (which every video would hit) propagates, after removing the partial output.

    Batched methods (``tvl1-torch``) run on ``device``, ``batch_pairs`` frame pairs at a
    time (default :func:`auto_batch_pairs`)."""
    source = Path(source)
    name = video or source.stem
    start = time.perf_counter()
    out = None
    try:
        batched = _BatchedFlow(flow, device, batch_pairs) if flow in BATCHED_FLOW_METHODS else None
        flow_fn = None if batched else create_flow(flow)
        prev_gray = None
        for frame in iter_frames(source, short_side):
            if out is None:  # created at the first decoded frame: clears any partial earlier output
                out = VideoOutput(out_root, name, jpeg_quality)
            out.add_frame(frame)
            gray = to_gray(frame)
            if batched is not None:
                batched.add(gray, out)
            elif prev_gray is not None:
                out.add_flow(flow_fn(prev_gray, gray))
            prev_gray = gray
        if batched is not None:
            batched.flush(out)
        if out.num_frames < 2:
            raise DataError(f"{source}: only {out.num_frames} decodable frame; at least 2 are needed for flow")
        out.finish(source=str(source), flow=flow, short_side=short_side, height=int(frame.shape[0]), width=int(frame.shape[1]))
        return VideoResult(name, str(source), "done", out.num_frames, None, time.perf_counter() - start)
    except Exception as exc:  # one line per video; the run continues
        if out is not None:  # leave no partial frame folders behind (there is no done-marker either)
            for folder in video_dirs(out_root, name):
                shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, FlowOutOfMemory):
            raise
        return VideoResult(name, str(source), "failed", 0, _one_line(exc, str(source)), time.perf_counter() - start)


def _init_worker(cv_threads: int) -> None:
    # Ctrl-C goes to the whole process group: the parent handles it and stops the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(cv_threads)
    import torch

    torch.set_num_threads(cv_threads)


def flow_devices(flow: str, device: str, workers: int) -> list[str]:
    """The device of each worker slot (video ``j`` runs on ``devices[j % len(devices)]``).

    Only batched methods use a device. ``--device cuda`` with ``--workers N > 1`` spreads
    the workers over every visible GPU (worker ``i`` on ``cuda:i mod GPUs``); ``cuda:N`` or
    ``cpu`` puts them all there; under ``torchrun`` each process has its ``LOCAL_RANK`` GPU.
    Refuses a device this machine lacks (one line, :class:`~matconv_port.devices.DeviceError`).
    """
    if flow not in BATCHED_FLOW_METHODS:
        return ["cpu"]
    import torch

    from matconv_port.devices import resolve_device

    resolved = resolve_device(device)
    name = (device or "cpu").strip()
    if resolved.type == "cuda" and name in ("cuda", "auto") and workers > 1 and _torchrun_world()[1] == 1:
        count = torch.cuda.device_count()
        return [f"cuda:{i % count}" for i in range(workers)]
    return [str(resolved)]


def _torchrun_world() -> tuple[int, int]:
    """``(rank, world size)`` of a ``torchrun`` launch, ``(0, 1)`` otherwise."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)


def _torchrun_barrier() -> None:
    """Wait for every ``torchrun`` process (gloo; only used before rank 0 writes the split lists)."""
    import torch.distributed as dist

    own = not dist.is_initialized()
    if own:
        dist.init_process_group(backend="gloo")
    dist.barrier()
    if own:
        dist.destroy_process_group()


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Terminate the workers of ``pool`` without waiting for queued videos."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(timeout=5)


def _video_names(sources: Sequence[Path]) -> dict[str, Path]:
    names: dict[str, Path] = {}
    for src in sources:
        if src.stem in names:
            raise DataError(f"{src}: same video name {src.stem!r} as {names[src.stem]}; video names (file names without extension) must be unique")
        if src.stem.startswith("."):
            continue
        names[src.stem] = src
    return names


def class_folders(video_dir: str | Path) -> dict[str, list[Path]]:
    """``{class: [video files]}`` for a folder-per-class tree (videos found recursively in each)."""
    root = Path(video_dir)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder of class folders")
    classes = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        vids = sorted(p for p in sub.rglob("*") if is_video_file(p))
        if vids:
            classes[sub.name] = vids
    loose = [p.name for p in root.iterdir() if is_video_file(p)]
    if loose:
        raise DataError(f"{root}: {loose[0]} is not inside a class folder (--classes-from-dirs expects <class>/<video> files)")
    if not classes:
        raise DataError(f"{root}: no class folder holds a video")
    return classes


def prepare_videos(
    video_dir: str | Path,
    out_root: str | Path,
    *,
    flow: str = "tvl1",
    workers: int = 1,
    short_side: int | None = DEFAULT_SHORT_SIDE,
    jpeg_quality: int = JPEG_QUALITY,
    classes_from_dirs: bool = False,
    test_fraction: float = 0.3,
    split_seed: int = 0,
    force: bool = False,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
    device: str = "cpu",
    batch_pairs: int | None = None,
    split_format: str = "ucf101",
    num_splits: int = 3,
) -> PrepareSummary:
    """Prepare every video below ``video_dir`` into ``out_root``; returns the summary.

    ``workers`` processes run videos in parallel (each with one OpenCV thread when
    ``workers > 1``; a single worker runs in this process with OpenCV's default
    threads). ``report`` receives the one-line error of each failed video as it
    happens (default: printed above the progress bar). With ``classes_from_dirs``,
    ``video_dir`` is ``<class>/<video file>`` and ``out_root/splits/`` receives the lists
    of splits 1..``num_splits`` in ``split_format`` (``ucf101`` or ``hmdb51``, see
    :mod:`.splits`; ``test_fraction`` of each class, by group when names follow
    ``v_<Class>_g<GG>_c<CC>``) over the videos that are complete.

    Batched flow (``tvl1-torch``) runs on ``device`` (see :func:`flow_devices` for
    ``--workers``), ``batch_pairs`` pairs at once. Under ``torchrun`` process ``r`` of ``n``
    takes every ``n``-th video (``r``, ``r + n``, ...) and rank 0 writes the split lists
    after all have finished.
    """
    from tqdm import tqdm

    if flow not in FLOW_METHODS:
        raise DataError(f"unknown flow method {flow!r}: choose one of {', '.join(FLOW_METHODS)}")
    if classes_from_dirs and not 0.0 <= test_fraction <= 1.0:
        raise DataError(f"--test-fraction {test_fraction} is not between 0 and 1")
    if batch_pairs is not None and batch_pairs < 1:
        raise DataError(f"--batch-pairs {batch_pairs}: must be at least 1")
    check_split_options(split_format, num_splits)
    devices = flow_devices(flow, device, workers)
    rank, world = _torchrun_world()
    out = Path(out_root)
    if classes_from_dirs:
        per_class = class_folders(video_dir)
        sources = [p for vids in per_class.values() for p in vids]
    else:
        per_class = {}
        sources = find_videos(video_dir)
        if not sources:
            raise DataError(f"{video_dir}: no video files found (extensions: avi, mp4, mkv, ...)")
    names = _video_names(sources)
    out.mkdir(parents=True, exist_ok=True)

    summary = PrepareSummary(str(out))
    todo: list[tuple[str, Path]] = []
    other_flow: list[str] = []
    for i, (name, src) in enumerate(names.items()):
        if i % world != rank:  # torchrun: another process's video
            continue
        marker = None if force else read_done_marker(out, name)
        if marker is not None:
            summary.results.append(VideoResult(name, str(src), "skipped", int(marker.get("frames", 0))))
            if marker.get("flow", flow) != flow:
                other_flow.append(f"{name} ({marker.get('flow')})")
        else:
            todo.append((name, src))
    if other_flow:
        summary.notes.append(
            f"{len(other_flow)} finished video(s) were prepared with another flow method and kept "
            f"(use --force to redo them with {flow}): {', '.join(other_flow[:5])}{' ...' if len(other_flow) > 5 else ''}"
        )

    def emit(msg: str) -> None:
        (report or tqdm.write)(f"error: {msg}")

    args = dict(flow=flow, short_side=short_side, jpeg_quality=jpeg_quality, batch_pairs=batch_pairs)
    bar = tqdm(total=len(todo), unit="video", desc="prepare" if world == 1 else f"prepare[{rank}/{world}]",
               disable=not progress or not todo)
    started = time.perf_counter()
    frames_done = 0

    def advance(res: VideoResult) -> None:
        nonlocal frames_done
        frames_done += res.frames
        bar.set_postfix_str(f"{frames_done / max(time.perf_counter() - started, 1e-9):.1f} frames/s", refresh=False)
        bar.update(1)

    try:
        if workers <= 1 or len(todo) <= 1:
            for name, src in todo:
                res = prepare_video(src, out, name, device=devices[0], **args)
                summary.results.append(res)
                if res.status == "failed":
                    emit(res.error or name)
                advance(res)
        else:
            ctx = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(max_workers=int(workers), mp_context=ctx, initializer=_init_worker, initargs=(1,))
            try:
                futures = {pool.submit(prepare_video, src, out, name, device=devices[j % len(devices)], **args): (name, src)
                           for j, (name, src) in enumerate(todo)}
                for fut in as_completed(futures):
                    name, src = futures[fut]
                    try:
                        res = fut.result()
                    except FlowOutOfMemory:
                        raise
                    except Exception as exc:  # a worker died (e.g. killed): report, continue
                        res = VideoResult(name, str(src), "failed", error=_one_line(exc, str(src)))
                    summary.results.append(res)
                    if res.status == "failed":
                        emit(res.error or name)
                    advance(res)
            except BaseException:  # Ctrl-C (or any abort): stop the workers now; unfinished videos have no marker
                _stop_pool(pool)
                raise
            pool.shutdown(wait=True)
    finally:
        bar.close()

    order = {name: i for i, name in enumerate(names)}
    summary.results.sort(key=lambda r: order.get(r.video, len(order)))
    if classes_from_dirs:
        if world > 1:
            _torchrun_barrier()
        if rank == 0:
            complete = {name for name in names if is_done(out, name)}
            class_videos = {cls: [p.stem for p in vids if p.stem in complete] for cls, vids in per_class.items()}
            if any(class_videos.values()):
                written = splits_from_classes(out / "splits", class_videos, test_fraction, split_seed,
                                              split_format=split_format, num_splits=num_splits)
                summary.split_files = [str(p) for p in written["files"]]
    return summary
