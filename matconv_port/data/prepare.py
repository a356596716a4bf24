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

from matconv_port.data.flow import FLOW_METHODS, create_flow, to_gray
from matconv_port.data.splits import splits_from_classes
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
) -> VideoResult:
    """Decode ``source`` and write its frames and flow under ``out_root`` as ``video``
    (default: the file name without extension). Never raises for a bad video: the
    error is returned as one line in ``VideoResult.error``."""
    source = Path(source)
    name = video or source.stem
    start = time.perf_counter()
    out = None
    try:
        flow_fn = create_flow(flow)
        prev_gray = None
        for frame in iter_frames(source, short_side):
            if out is None:  # created at the first decoded frame: clears any partial earlier output
                out = VideoOutput(out_root, name, jpeg_quality)
            out.add_frame(frame)
            gray = to_gray(frame)
            if prev_gray is not None:
                out.add_flow(flow_fn(prev_gray, gray))
            prev_gray = gray
        if out.num_frames < 2:
            raise DataError(f"{source}: only {out.num_frames} decodable frame; at least 2 are needed for flow")
        out.finish(source=str(source), flow=flow, short_side=short_side, height=int(frame.shape[0]), width=int(frame.shape[1]))
        return VideoResult(name, str(source), "done", out.num_frames, None, time.perf_counter() - start)
    except Exception as exc:  # one line per video; the run continues
        if out is not None:  # leave no partial frame folders behind (there is no done-marker either)
            for folder in video_dirs(out_root, name):
                shutil.rmtree(folder, ignore_errors=True)
        return VideoResult(name, str(source), "failed", 0, _one_line(exc, str(source)), time.perf_counter() - start)


def _init_worker(cv_threads: int) -> None:
    # Ctrl-C goes to the whole process group: the parent handles it and stops the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(cv_threads)


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
) -> PrepareSummary:
    """Prepare every video below ``video_dir`` into ``out_root``; returns the summary.

    ``workers`` processes run videos in parallel (each with one OpenCV thread when
    ``workers > 1``; a single worker runs in this process with OpenCV's default
    threads). ``report`` receives the one-line error of each failed video as it
    happens (default: printed above the progress bar). With ``classes_from_dirs``,
    ``video_dir`` is ``<class>/<video file>`` and ``out_root/splits/`` receives the
    UCF101-format lists of split 1 (``test_fraction`` of each class, by group when
    names follow ``v_<Class>_g<GG>_c<CC>``) over the videos that are complete.
    """
    from tqdm import tqdm

    if flow not in FLOW_METHODS:
        raise DataError(f"unknown flow method {flow!r}: choose one of {', '.join(FLOW_METHODS)}")
    if classes_from_dirs and not 0.0 <= test_fraction <= 1.0:
        raise DataError(f"--test-fraction {test_fraction} is not between 0 and 1")
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
    for name, src in names.items():
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

    args = dict(flow=flow, short_side=short_side, jpeg_quality=jpeg_quality)
    bar = tqdm(total=len(todo), unit="video", desc="prepare", disable=not progress or not todo)
    try:
        if workers <= 1 or len(todo) <= 1:
            for name, src in todo:
                res = prepare_video(src, out, name, **args)
                summary.results.append(res)
                if res.status == "failed":
                    emit(res.error or name)
                bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(max_workers=int(workers), mp_context=ctx, initializer=_init_worker, initargs=(1,))
            try:
                futures = {pool.submit(prepare_video, src, out, name, **args): (name, src) for name, src in todo}
                for fut in as_completed(futures):
                    name, src = futures[fut]
                    try:
                        res = fut.result()
                    except Exception as exc:  # a worker died (e.g. killed): report, continue
                        res = VideoResult(name, str(src), "failed", error=_one_line(exc, str(src)))
                    summary.results.append(res)
                    if res.status == "failed":
                        emit(res.error or name)
                    bar.update(1)
            except BaseException:  # Ctrl-C (or any abort): stop the workers now; unfinished videos have no marker
                _stop_pool(pool)
                raise
            pool.shutdown(wait=True)
    finally:
        bar.close()

    order = {name: i for i, name in enumerate(names)}
    summary.results.sort(key=lambda r: order.get(r.video, len(order)))
    if classes_from_dirs:
        complete = {name for name in names if is_done(out, name)}
        class_videos = {cls: [p.stem for p in vids if p.stem in complete] for cls, vids in per_class.items()}
        if any(class_videos.values()):
            written = splits_from_classes(out / "splits", class_videos, test_fraction, split_seed)
            summary.split_files = [str(p) for p in written["files"]]
    return summary
