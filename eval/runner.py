"""Evaluate a model on a dataset split with one of the paper's protocols.

:func:`evaluate_split` plans every test video (:mod:`~matconv_port.eval.plan`),
decodes and assembles clips in ``DataLoader`` workers
(:mod:`~matconv_port.eval.batches`), runs the net, averages raw class scores over
space and frames of each clip, then over clips, flips and heads per video, and
writes the reports (:mod:`~matconv_port.eval.report`).

Resumability: each scored video is appended as one line to
``OUTDIR/video_scores.jsonl`` (float32 scores base64-encoded) as soon as it is
complete, after a header line describing the run. A rerun with the same settings
skips the videos already there; a torn last line (interrupted write) is dropped.
An interrupted run thus loses at most the video in flight.

Several processes (``torchrun``; :mod:`~matconv_port.eval.shards`) share the videos
not scored yet; process ``r`` appends to ``video_scores.rank<r>.jsonl`` (process 0 to
``video_scores.jsonl``), every log in the folder counts when resuming, and process 0
writes the one ``summary.json`` (with ``world_size``).

On CUDA the input batches come pinned (the ``DataLoader`` pins each chunk and gives
its shared-memory slot back), are copied ``non_blocking``, mirrored and
mean-subtracted on the GPU, and each batch's scores come back through a pinned
buffer while the next batch's forward is already queued (:class:`_HostScores`), so
the GPU does not wait for the host between batches; the copy to the GPU runs on a
side stream (:class:`_Uploader`), beside the previous batch's forward pass.
"""
from __future__ import annotations

import base64
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from matconv_port.data.frames import frame_size as stored_frame_size, rgb_dir
from matconv_port.devices import resolve_device
from matconv_port.errors import DataError, MatConvPortError
from matconv_port.eval import metrics, report, shards
from matconv_port.eval.batches import ChunkResult, VideoChunkDataset, collate_single, make_chunks
from matconv_port.eval.model_io import ModelStreams, describe_model
from matconv_port.eval.plan import (
    STORED_FRAME_SIZE,
    Protocol,
    VideoPlan,
    check_stream,
    default_protocol,
    get_protocol,
    plan_video,
)
from matconv_port.eval.splits import Split, count_frames, read_split

__all__ = ["EvalOptions", "evaluate_split", "evaluate", "plan_split", "resolve_protocol", "SCORES_LOG"]

SCORES_LOG = shards.log_name(0)
PREFETCH = 2  # chunks each DataLoader worker prepares ahead


@dataclass
class EvalOptions:
    """Settings of one evaluation (see ``matconv-port eval --help``)."""

    model_path: str
    data_root: str
    dataset: str = "ucf101"
    splits_dir: str | None = None
    protocol: str | None = None
    stream: str | None = None
    out_dir: str = "eval_out"
    device: str = "cpu"
    seed: int = 0
    skip_missing: bool = False
    workers: int | None = None
    batch_clips: int | None = None
    progress: bool = True
    max_videos: int | None = None
    precision: str = "exact"
    #: MatConvNet semantics where the fork and stock differ (matconv_port.semantics): auto|fork|stock
    semantics: str = "auto"


def default_workers(processes_per_node: int | None = None) -> int:
    """DataLoader workers decoding JPEGs: the node's cores but one (for the process
    feeding the GPU), shared among the ``torchrun`` processes of the node, at most 16
    each; at least 1."""
    per_node = processes_per_node or int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, min(16, (cores - per_node) // max(1, per_node)))


def resolve_protocol(name: str | None, kind: str, frames_per_clip: int | None = None) -> Protocol:
    """The named protocol (checked against the net kind) or the paper's default.

    For a fused net built for ``T != 5`` frames per clip (``nFrames``), the fused
    protocols use ``T``-frame clips and ``10*T`` samples, as the original's
    ``numValFrames = nFrames*10`` and ``nFrameStack = nFrames`` do.
    """
    p = default_protocol(kind) if name is None else get_protocol(name)
    if p.kind == "fused" and kind == "fused" and frames_per_clip and frames_per_clip != p.clip_len:
        p = replace(p, samples=10 * int(frames_per_clip), clip_len=int(frames_per_clip),
                    description=p.description + f" ({frames_per_clip}-frame clips, {10 * frames_per_clip} samples)")
    check_stream(p, kind)
    return p


def plan_split(split: Split, data_root: str, protocol: Protocol, stream: str, seed: int, skip_missing: bool,
               crop_size: int = 224, flow_channels: int = 20, frame_size: tuple[int, int] | None = None,
               max_videos: int | None = None) -> tuple[list[VideoPlan], list[dict]]:
    """Plans of the split's test videos, and the skipped ones (``{"video", "reason"}``).

    Without ``skip_missing`` the first problem (missing frame folder, too short video)
    raises :class:`DataError` naming the video. ``frame_size`` None reads each video's
    first frame header for crop boxes (crop protocols only); plans are otherwise for
    the stored 256 x 340 frame.
    """
    plans: list[VideoPlan] = []
    skipped: list[dict] = []
    videos = split.test if max_videos is None else split.test[:max_videos]
    for v in videos:
        try:
            n = count_frames(data_root, v.name)
            if n == 0:
                raise DataError(f"video {v.name}: no frames in {rgb_dir(data_root, v.name)}")
            size = frame_size
            if size is None:
                size = stored_frame_size(data_root, v.name) if protocol.crops else STORED_FRAME_SIZE
            plans.append(plan_video(protocol, v.name, v.label, n, stream=stream, seed=seed, frame_size=size,
                                    crop_size=crop_size, flow_channels=flow_channels))
        except DataError as exc:
            if not skip_missing:
                raise
            skipped.append({"video": v.name, "reason": str(exc)})
    return plans, skipped


# ----------------------------------------------------------------------------- scores log
def _encode(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def _decode(s: str, shape: list[int]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype="<f4").reshape(shape).copy()


def _load_log(path: str, config: dict, repair: bool = True) -> dict[str, dict]:
    """Scored videos of a previous run with the same ``config``; drops a torn tail
    (and cuts it from the file when ``repair``)."""
    done: dict[str, dict] = {}
    if not os.path.exists(path):
        return done
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    good_bytes = 0
    for i, raw in enumerate(lines):
        if not raw.strip():
            good_bytes += len(raw) + (1 if i < len(lines) - 1 else 0)
            continue
        try:
            rec = json.loads(raw)
            complete = i < len(lines) - 1  # a line is complete only with its newline
        except ValueError:
            complete = False
        if not complete:
            break
        good_bytes += len(raw) + 1
        if "config" in rec:
            if rec["config"] != config:
                diff = sorted(k for k in set(rec["config"]) | set(config) if rec["config"].get(k) != config.get(k))
                raise DataError(f"{path}: holds scores of a different run (differs in {', '.join(diff)}); "
                                f"use another --out or delete it")
            continue
        done[rec["video"]] = rec
    if repair and good_bytes < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
    return done


class _ScoreLog:
    def __init__(self, path: str, config: dict):
        self.path = path
        fresh = not os.path.exists(path) or os.path.getsize(path) == 0
        self.f = open(path, "ab")
        if fresh:
            self._write({"config": config})

    def _write(self, rec: dict) -> None:
        self.f.write((json.dumps(rec, separators=(",", ":")) + "\n").encode("utf-8"))
        self.f.flush()
        os.fsync(self.f.fileno())

    def add(self, plan: VideoPlan, scores: np.ndarray) -> dict:
        rec = {"video": plan.video, "label": plan.label, "num_frames": plan.num_frames,
               "shape": list(scores.shape), "scores": _encode(scores)}
        self._write(rec)
        return rec

    def close(self) -> None:
        self.f.close()


# ----------------------------------------------------------------------------- forward
class _Uploader:
    """Host-to-device copies of a batch on a side CUDA stream, so that they overlap the
    forward pass of the previous batch (queued on the main stream) instead of waiting
    behind it; the main stream waits for the copy only. Nothing to do on CPU."""

    def __init__(self, device: torch.device):
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def __call__(self, res: ChunkResult, device: torch.device) -> None:
        if self.stream is None:
            return
        main = torch.cuda.current_stream(device)
        with torch.cuda.stream(self.stream):
            moved = [t.to(device, non_blocking=True) if t is not None else None for t in (res.rgb, res.flow)]
        main.wait_stream(self.stream)
        for t in moved:
            if t is not None:
                t.record_stream(main)  # allocated on the side stream, used on the main one
        res.release()  # pinned copies (or staged pageable ones): the source may be reused
        res.rgb, res.flow = moved


def _forward(model: Any, streams: ModelStreams, res: ChunkResult, device: torch.device,
             upload: _Uploader | None = None) -> torch.Tensor:
    """``heads x clips x K`` float32 on ``device``: raw scores averaged over space and
    frames of each clip (queued, not waited for, on CUDA)."""
    inputs: dict[str, torch.Tensor] = {}
    clips = len(res.clip_indices)
    if upload is not None:
        upload(res, device)
    rgb, flow = res.normalized(streams.norm, device)
    res.release()  # copied: the worker may reuse its buffer
    for var, t in ((streams.rgb_var, rgb), (streams.flow_var, flow)):
        if var is None:
            continue
        inputs[var] = t.reshape(-1, *t.shape[2:])  # (clips*T) x C x H x W, frames fastest
    with torch.inference_mode():
        out = model.forward_vars(inputs, num_videos=clips, outputs=list(streams.score_vars))
        heads = []
        for v in streams.score_vars:
            if v not in out:
                raise MatConvPortError(f"model did not compute prediction variable {v}")
            y = out[v].float()
            if y.dim() == 2:
                y = y[:, :, None, None]
            y = y.reshape(clips, -1, *y.shape[1:])  # clips x frames x K x h x w
            heads.append(y.mean(dim=(1, 3, 4)))
        return torch.stack(heads)


class _HostScores:
    """Scores on their way to the host: on CUDA a ``non_blocking`` copy into pinned
    memory and an event, read (:meth:`numpy`) only after the next batch's forward has
    been queued; on CPU the tensor itself."""

    def __init__(self, scores: torch.Tensor):
        self.event = None
        if scores.device.type == "cuda":
            self.host = torch.empty(scores.shape, dtype=scores.dtype, pin_memory=True)
            self.host.copy_(scores, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.host = scores

    def numpy(self) -> np.ndarray:
        if self.event is not None:
            self.event.synchronize()
        return self.host.numpy()


def _shm_free_bytes(path: str = "/dev/shm") -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _fit_shared_memory(dataset: VideoChunkDataset, workers: int, log: Callable[[str], None],
                       free: int | None = None) -> int:
    """Allocate the workers' slot pool (:meth:`VideoChunkDataset.use_slot_pool`) within
    80% of the free shared memory (``/dev/shm``; a container's default is 64 MiB): a
    worker writing past it dies of SIGBUS. Fewer workers when it does not fit, none
    (decoding in this process) when one does not; returns the workers to use."""
    free = _shm_free_bytes() if free is None else free
    slots = PREFETCH + 2
    pool = dataset.use_slot_pool(workers, slots_per_worker=slots)
    if pool is None or free is None:
        return workers
    per_worker = (slots + 1) * pool.slot_bytes  # its slots, and a fresh tensor when they are all in use
    fit = min(workers, int(0.8 * free) // per_worker)
    if fit == workers:
        return workers
    log(f"/dev/shm has {free / 2**20:.0f} MiB free; {workers} decode workers need about "
        f"{workers * per_worker / 2**20:.0f} MiB: using {fit} (enlarge /dev/shm, e.g. docker --shm-size, "
        f"or lower --batch-clips)")
    dataset.pool = None
    if fit > 0:
        dataset.use_slot_pool(fit, slots_per_worker=slots)
    return fit


def _out_of_memory(device: torch.device, batch_clips: int) -> MatConvPortError:
    lower = f"e.g. --batch-clips {batch_clips // 2}" if batch_clips > 1 else "or --precision bf16"
    return MatConvPortError(f"{device}: out of memory running {batch_clips} clips per forward pass; "
                            f"lower --batch-clips ({lower})")


def _default_batch_clips(protocol: Protocol, device: torch.device, clips_per_video: int) -> int:
    """Clips per forward pass: the protocol's CPU default; on a GPU a whole video."""
    if device.type == "cuda" and clips_per_video > 0:
        return clips_per_video
    return protocol.batch_clips


def _prepare(opts: EvalOptions, info: shards.DistInfo | None) -> tuple[torch.device, shards.DistInfo]:
    """The ``--device`` (refused in one line before anything is written) and the process group."""
    from matconv_port.precision import resolve_precision

    resolve_precision(opts.precision)
    device = resolve_device(opts.device)
    return device, (info if info is not None else shards.single(device))


def evaluate_split(opts: EvalOptions, split_no: int, model: Any = None, streams: ModelStreams | None = None,
                   out_dir: str | None = None, log: Callable[[str], None] | None = None,
                   dist_info: shards.DistInfo | None = None) -> dict:
    """Evaluate ``opts.model_path`` on test split ``split_no``; write reports to ``out_dir``
    (default ``opts.out_dir``) and return the summary dict.

    ``dist_info`` (:func:`~matconv_port.eval.shards.join`): the processes sharing the
    videos; default one process. Every process returns the same summary.
    """
    from tqdm import tqdm

    from matconv_port import load_model

    device, info = _prepare(opts, dist_info)
    if info.active:
        device = info.device
    out_dir = out_dir or opts.out_dir
    if model is None:
        model = load_model(opts.model_path, device=device, precision=opts.precision, semantics=opts.semantics)
    if streams is None:
        streams = describe_model(model)
    protocol = resolve_protocol(opts.protocol, streams.kind, streams.frames_per_clip)
    if opts.stream is not None and streams.kind != "fused" and opts.stream != streams.kind:
        raise DataError(f"--stream {opts.stream}: the model takes {streams.kind} input")
    splits_dir = opts.splits_dir or os.path.join(opts.data_root, "splits")
    split = read_split(opts.dataset, splits_dir, split_no)
    classes = split.classes
    crop = streams.norm.input_size[0]
    flow_ch = streams.norm.flow_channels or 20
    plans, skipped = plan_split(split, opts.data_root, protocol, streams.kind, opts.seed, opts.skip_missing,
                                crop_size=crop, flow_channels=flow_ch, max_videos=opts.max_videos)
    os.makedirs(out_dir, exist_ok=True)

    config = {"model": os.path.abspath(opts.model_path), "dataset": opts.dataset, "split": split_no,
              "protocol": protocol.name, "seed": int(opts.seed), "data_root": os.path.abspath(opts.data_root)}
    done: dict[str, dict] = {}
    for path in shards.log_paths(out_dir):  # every process reads all logs; process 0 cuts torn tails
        done.update(_load_log(path, config, repair=info.is_main))
    shards.barrier(info)  # before anyone appends
    pending_all = [i for i, p in enumerate(plans) if p.video not in done]
    pending = shards.share(pending_all, info)
    batch_clips = opts.batch_clips or _default_batch_clips(protocol, device, len(plans[0].clips) if plans else 0)
    chunks = [c for i in pending for c in make_chunks(i, plans[i], batch_clips)]
    workers = default_workers() if opts.workers is None else max(0, int(opts.workers))
    dataset = VideoChunkDataset(opts.data_root, plans, chunks, streams.norm)
    workers = _fit_shared_memory(dataset, workers, log or (lambda m: print(m, file=sys.stderr)))
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=workers,
                        collate_fn=collate_single, pin_memory=device.type == "cuda",
                        prefetch_factor=PREFETCH if workers > 0 else None)
    score_log = _ScoreLog(os.path.join(out_dir, shards.log_name(info.rank)), config)
    t0 = time.time()
    failed: set[int] = set()
    partial: dict[int, np.ndarray] = {}
    filled: dict[int, int] = {}
    mine_done: dict[str, dict] = {}
    run_skipped: list[dict] = []
    in_flight: tuple[ChunkResult, _HostScores] | None = None
    upload = _Uploader(device)
    num_classes_checked = False

    def store(res: ChunkResult, host: _HostScores) -> None:
        nonlocal num_classes_checked
        s = host.numpy()
        vi = res.video_index
        if vi in failed:  # a later batch of this video could not be read
            return
        plan = plans[vi]
        if not num_classes_checked:
            if s.shape[-1] != len(classes):
                raise DataError(f"the model predicts {s.shape[-1]} classes; split {split_no} of "
                                f"{opts.dataset} in {splits_dir} has {len(classes)}")
            num_classes_checked = True
        if vi not in partial:
            partial[vi] = np.zeros((s.shape[0], len(plan.clips), s.shape[-1]), np.float32)
            filled[vi] = 0
        partial[vi][:, list(res.clip_indices)] = s
        filled[vi] += len(res.clip_indices)
        if filled[vi] == len(plan.clips):
            mine_done[plan.video] = score_log.add(plan, partial.pop(vi))
            bar.set_postfix(videos=len(mine_done))

    try:
        where = f"split {split_no}" + (f", process {info.rank}/{info.world_size}" if info.active else "")
        bar = tqdm(total=len(chunks), unit="batch", disable=not opts.progress, dynamic_ncols=True,
                   desc=f"{where} ({len(pending)} videos)")
        for res in loader:
            bar.update(1)
            vi = res.video_index
            if vi in failed:
                res.release()
                continue
            if res.error is not None:
                if not opts.skip_missing:
                    raise DataError(res.error)
                failed.add(vi)
                partial.pop(vi, None)
                run_skipped.append({"video": plans[vi].video, "reason": res.error})
                continue
            try:
                scores = _HostScores(_forward(model, streams, res, device, upload))
                if in_flight is not None:  # read the previous batch once this one is queued
                    store(*in_flight)
            except torch.OutOfMemoryError:
                raise _out_of_memory(device, batch_clips) from None
            in_flight = (res, scores)
        if in_flight is not None:
            store(*in_flight)
        bar.close()
    finally:
        score_log.close()

    # ------------------------------------------------------------ gather (files)
    scored_here = shards.total(len(mine_done), info)
    for extra in shards.gather_objects(run_skipped, info):
        skipped.extend(extra)
    shards.barrier(info)  # every log is complete
    summary_path = os.path.join(out_dir, "summary.json")
    if info.is_main:
        for path in shards.log_paths(out_dir):
            done.update(_load_log(path, config, repair=False))
        summary = _write_reports(opts, split_no, split, protocol, streams, plans, done, skipped, out_dir, device,
                                 info, time.time() - t0, len(pending_all), scored_here, model)
    shards.barrier(info)  # summary.json written
    if not info.is_main:
        with open(summary_path, encoding="utf-8") as f:
            summary = json.load(f)
    return summary


def _write_reports(opts: EvalOptions, split_no: int, split: Split, protocol: Protocol, streams: ModelStreams,
                   plans: list[VideoPlan], done: dict[str, dict], skipped: list[dict], out_dir: str,
                   device: torch.device, info: shards.DistInfo, elapsed: float, num_pending: int,
                   scored_now: int, model: Any = None) -> dict:
    """``summary.json``, ``per_class_accuracy.csv``, ``confusion.png`` and ``scores.npz``
    from the scores of every video in ``done`` (written by process 0)."""
    classes = split.classes
    scored = [p for p in plans if p.video in done]
    per_video = [_decode(done[p.video]["scores"], done[p.video]["shape"]) for p in scored]
    labels = np.array([p.label for p in scored], dtype=np.int64)
    K = len(classes)
    video_scores = np.stack([s.mean(axis=(0, 1)) for s in per_video]) if per_video else np.zeros((0, K), np.float32)
    summ = metrics.summarize(video_scores, labels, K)

    model_classes = list(streams.classes)
    summary = {
        "top1": summ["top1"], "top5": summ["top5"], "mean_class_accuracy": summ["mean_class_accuracy"],
        "num_videos": summ["num_videos"], "num_test_videos": len(split.test), "num_skipped": len(skipped),
        "skipped": skipped, "protocol": protocol.name, "protocol_description": protocol.description,
        "model": os.path.abspath(opts.model_path), "model_kind": streams.kind, "score_vars": list(streams.score_vars),
        "dataset": opts.dataset, "split": split_no, "seed": int(opts.seed), "device": str(device),
        "precision": getattr(model, "precision", None) or opts.precision, "world_size": info.world_size,
        "clips_per_video": len(plans[0].clips) if plans else 0,
        "classes_match_model": (model_classes == list(classes)) if model_classes else None,
        "elapsed_s": round(elapsed, 3),
        "videos_scored_this_run": int(scored_now),
        "videos_per_s_this_run": round(num_pending / elapsed, 4) if elapsed > 0 and num_pending else None,
    }
    report.write_json(os.path.join(out_dir, "summary.json"), summary)
    report.write_per_class_csv(os.path.join(out_dir, "per_class_accuracy.csv"), classes, summ["confusion"], summ["per_class"])
    report.write_confusion_png(os.path.join(out_dir, "confusion.png"), summ["confusion"], classes,
                               f"{opts.dataset} split {split_no}, {protocol.name}: top-1 {summ['top1']:.3f}")
    if scored:
        T = len(scored[0].clips[0].frames)
        report.write_scores_npz(
            os.path.join(out_dir, "scores.npz"),
            videos=np.array([p.video for p in scored]), labels=labels,
            num_frames=np.array([p.num_frames for p in scored]),
            scores=np.stack(per_video).astype(np.float32), video_scores=video_scores.astype(np.float32),
            heads=np.array(list(streams.score_vars)), classes=np.array(list(classes)),
            clip_flip=np.array([c.flip for c in scored[0].clips]),
            clip_crop=np.array([list(c.crop) if c.crop else [-1, -1, -1, -1] for c in scored[0].clips]),
            clip_frames=np.array([[list(c.frames) for c in p.clips] for p in scored]).reshape(len(scored), -1, T),
        )
    return summary


def evaluate(opts: EvalOptions, split: str | int, dist_info: shards.DistInfo | None = None) -> dict:
    """Evaluate one split (``1``..``3``) or ``"all"`` (three splits into
    ``OUTDIR/split<N>``, and their mean in ``OUTDIR/summary.json``).

    ``dist_info``: the processes sharing the work (:func:`~matconv_port.eval.shards.join`)."""
    from matconv_port import load_model

    if str(split) != "all":
        return evaluate_split(opts, int(split), dist_info=dist_info)
    device, info = _prepare(opts, dist_info)
    if info.active:
        device = info.device
    model = load_model(opts.model_path, device=device, precision=opts.precision, semantics=opts.semantics)
    streams = describe_model(model)
    per = {}
    for s in (1, 2, 3):
        per[s] = evaluate_split(opts, s, model=model, streams=streams, out_dir=os.path.join(opts.out_dir, f"split{s}"),
                                dist_info=info)
    keys = ("top1", "top5", "mean_class_accuracy")
    mean = {k: float(np.mean([per[s][k] for s in per])) for k in keys}
    summary = {**mean, "num_videos": int(sum(per[s]["num_videos"] for s in per)),
               "num_skipped": int(sum(per[s]["num_skipped"] for s in per)),
               "protocol": per[1]["protocol"], "model": per[1]["model"], "dataset": opts.dataset, "split": "all",
               "precision": opts.precision, "world_size": info.world_size,
               "splits": {str(s): {k: per[s][k] for k in keys + ("num_videos", "num_skipped")} for s in per}}
    if info.is_main:
        report.write_json(os.path.join(opts.out_dir, "summary.json"), summary)
    shards.barrier(info)
    return summary
