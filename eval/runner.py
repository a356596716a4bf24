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
"""
from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from matconv_port.errors import DataError, MatConvPortError
from matconv_port.eval import metrics, report
from matconv_port.eval.batches import ChunkResult, VideoChunkDataset, collate_single, make_chunks
from matconv_port.eval.model_io import ModelStreams, describe_model
from matconv_port.eval.plan import Protocol, VideoPlan, default_protocol, get_protocol, plan_video
from matconv_port.eval.splits import Split, count_frames, read_split

__all__ = ["EvalOptions", "evaluate_split", "evaluate", "plan_split", "resolve_protocol", "SCORES_LOG"]

SCORES_LOG = "video_scores.jsonl"
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
    workers: int = 2
    batch_clips: int | None = None
    progress: bool = True
    max_videos: int | None = None
    #: MatConvNet semantics where the fork and stock differ (matconv_port.semantics): auto|fork|stock
    semantics: str = "auto"


def resolve_protocol(name: str | None, kind: str, frames_per_clip: int | None = None) -> Protocol:
    """The named protocol (checked against the net kind) or the paper's default.

    For a fused net built for ``T != 5`` frames per clip (``nFrames``), the fused
    protocols use ``T``-frame clips and ``10*T`` samples, as the original's
    ``numValFrames = nFrames*10`` and ``nFrameStack = nFrames`` do.
    """
    if name is None:
        p = default_protocol("fused" if kind == "fused" else "single")
    else:
        p = get_protocol(name)
    if p.kind == "fused" and kind == "fused" and frames_per_clip and frames_per_clip != p.clip_len:
        p = replace(p, samples=10 * int(frames_per_clip), clip_len=int(frames_per_clip),
                    description=p.description + f" ({frames_per_clip}-frame clips, {10 * frames_per_clip} samples)")
    if name is None:
        return p
    if (p.kind == "fused") != (kind == "fused"):
        what = "a fused (RGB + flow) net" if p.kind == "fused" else "a single-stream net"
        raise DataError(f"protocol {p.name} is for {what}; this model is {kind}")
    if p.crops == 2 and kind == "flow":
        raise DataError("protocol crops2 is RGB only (the original flow code allows 10 or 6 crops)")
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
                raise DataError(f"video {v.name}: no frames in {os.path.join(data_root, 'jpegs_256', v.name)}")
            size = frame_size
            if size is None:
                size = _first_frame_size(data_root, v.name) if protocol.crops else (256, 340)
            plans.append(plan_video(protocol, v.name, v.label, n, stream=stream, seed=seed, frame_size=size,
                                    crop_size=crop_size, flow_channels=flow_channels))
        except DataError as exc:
            if not skip_missing:
                raise
            skipped.append({"video": v.name, "reason": str(exc)})
    return plans, skipped


def _first_frame_size(root: str, video: str) -> tuple[int, int]:
    import cv2

    from matconv_port.eval.batches import rgb_path

    path = rgb_path(root, video, 1)
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise DataError(f"{path}: frame missing or unreadable (video {video})")
    return int(img.shape[0]), int(img.shape[1])


# ----------------------------------------------------------------------------- scores log
def _encode(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def _decode(s: str, shape: list[int]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype="<f4").reshape(shape).copy()


def _load_log(path: str, config: dict) -> dict[str, dict]:
    """Scored videos of a previous run with the same ``config``; drops a torn tail."""
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
    if good_bytes < len(data):
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
def _clip_scores(model: Any, streams: ModelStreams, res: ChunkResult, device: torch.device) -> np.ndarray:
    """``heads x clips x K``: raw scores averaged over space and frames of each clip."""
    inputs: dict[str, torch.Tensor] = {}
    clips = len(res.clip_indices)
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
        heads.append(y.mean(dim=(1, 3, 4)).cpu().numpy())
    return np.stack(heads)


def _device(name: str) -> torch.device:
    """``--device`` as a torch device; a clear error for a bad name or missing CUDA."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise MatConvPortError(f"--device {name}: not a device (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MatConvPortError(f"--device {name}: no CUDA device is available")
    return device


def _default_batch_clips(protocol: Protocol) -> int:
    if protocol.kind == "fused":
        return 2
    per_frame = 2 * max(1, protocol.crops)
    return per_frame * (5 if protocol.crops == 0 else 1)


def evaluate_split(opts: EvalOptions, split_no: int, model: Any = None, streams: ModelStreams | None = None,
                   out_dir: str | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Evaluate ``opts.model_path`` on test split ``split_no``; write reports to ``out_dir``
    (default ``opts.out_dir``) and return the summary dict."""
    from tqdm import tqdm

    from matconv_port import load_model

    out_dir = out_dir or opts.out_dir
    os.makedirs(out_dir, exist_ok=True)
    device = _device(opts.device)
    if model is None:
        model = load_model(opts.model_path, device=device, semantics=opts.semantics)
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

    config = {"model": os.path.abspath(opts.model_path), "dataset": opts.dataset, "split": split_no,
              "protocol": protocol.name, "seed": int(opts.seed), "data_root": os.path.abspath(opts.data_root)}
    log_path = os.path.join(out_dir, SCORES_LOG)
    done = _load_log(log_path, config)
    pending = [i for i, p in enumerate(plans) if p.video not in done]
    batch_clips = opts.batch_clips or _default_batch_clips(protocol)
    chunks = [c for i in pending for c in make_chunks(i, plans[i], batch_clips)]
    workers = max(0, int(opts.workers))
    dataset = VideoChunkDataset(opts.data_root, plans, chunks, streams.norm)
    dataset.use_slot_pool(workers, slots_per_worker=PREFETCH + 2)
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=workers,
                        collate_fn=collate_single, pin_memory=device.type == "cuda",
                        prefetch_factor=PREFETCH if workers > 0 else None)
    score_log = _ScoreLog(log_path, config)
    t0 = time.time()
    failed: set[int] = set()
    partial: dict[int, np.ndarray] = {}
    filled: dict[int, int] = {}
    num_classes_checked = False
    try:
        bar = tqdm(total=len(chunks), unit="batch", disable=not opts.progress, dynamic_ncols=True,
                   desc=f"split {split_no} ({len(pending)} videos)")
        for res in loader:
            bar.update(1)
            vi = res.video_index
            if vi in failed:
                res.release()
                continue
            plan = plans[vi]
            if res.error is not None:
                if not opts.skip_missing:
                    raise DataError(res.error)
                failed.add(vi)
                partial.pop(vi, None)
                skipped.append({"video": plan.video, "reason": res.error})
                continue
            s = _clip_scores(model, streams, res, device)
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
                done[plan.video] = score_log.add(plan, partial.pop(vi))
                bar.set_postfix(videos=len(done))
        bar.close()
    finally:
        score_log.close()
    elapsed = time.time() - t0

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
        "clips_per_video": len(plans[0].clips) if plans else 0,
        "classes_match_model": (model_classes == list(classes)) if model_classes else None,
        "elapsed_s": round(elapsed, 3),
        "videos_per_s_this_run": round(len(pending) / elapsed, 4) if elapsed > 0 and pending else None,
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


def evaluate(opts: EvalOptions, split: str | int) -> dict:
    """Evaluate one split (``1``..``3``) or ``"all"`` (three splits into
    ``OUTDIR/split<N>``, and their mean in ``OUTDIR/summary.json``)."""
    from matconv_port import load_model

    if str(split) != "all":
        return evaluate_split(opts, int(split))
    device = _device(opts.device)
    model = load_model(opts.model_path, device=device, semantics=opts.semantics)
    streams = describe_model(model)
    per = {}
    for s in (1, 2, 3):
        per[s] = evaluate_split(opts, s, model=model, streams=streams, out_dir=os.path.join(opts.out_dir, f"split{s}"))
    keys = ("top1", "top5", "mean_class_accuracy")
    mean = {k: float(np.mean([per[s][k] for s in per])) for k in keys}
    summary = {**mean, "num_videos": int(sum(per[s]["num_videos"] for s in per)),
               "num_skipped": int(sum(per[s]["num_skipped"] for s in per)),
               "protocol": per[1]["protocol"], "model": per[1]["model"], "dataset": opts.dataset, "split": "all",
               "splits": {str(s): {k: per[s][k] for k in keys + ("num_videos", "num_skipped")} for s in per}}
    report.write_json(os.path.join(opts.out_dir, "summary.json"), summary)
    return summary
