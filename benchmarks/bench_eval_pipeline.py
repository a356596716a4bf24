"""Evaluation data pipeline throughput, and end-to-end speed with a full-size fused
VGG-16.

1. Pipeline: clips/s assembled by ``VideoChunkDataset`` through a ``DataLoader``
   (``--workers`` processes, as ``eval`` runs it: JPEG decode, crops, uint8
   ``bases x T x C x H x W`` tensors written into the workers' reused shared-memory
   slots and received by the main process) for the ``fusion-paper`` protocol on a
   synthetic dataset of 256 x 340 frames, as a ratio to a bare single-process loop of
   ``np.fromfile`` + ``cv2.imdecode`` over the SAME JPEG files (each chunk's distinct
   files) in the same run. Goal: ratio per worker >= 0.8. Mirrors, ``u -> 255 - u``
   and mean subtraction run afterwards on the model's device
   (``ChunkResult.normalized``); their CPU cost is reported on its own line.
2. End to end (``--e2e``): seconds per clip of the full-size fused two-stream VGG-16
   (random weights, ``matconv_port.fusion``) on whole 256 x 340 frames, and the
   projected time for the UCF101 split-1 test set (3,783 videos x 20 clips).

    python benchmarks/bench_eval_pipeline.py [--videos 4] [--workers 2] [--e2e] [--device cpu]
        [--results benchmarks/RESULTS_eval.md]
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from matconv_port.eval.batches import (
    Normalization,
    VideoChunkDataset,
    collate_single,
    flow_path,
    make_chunks,
    rgb_path,
)
from matconv_port.eval.plan import get_protocol, plan_video
from matconv_port.eval.runner import PREFETCH

UCF101_SPLIT1_TEST = 3783


def _dataset(root: str, videos: int, frames: int, texture: bool) -> list[tuple[str, int]]:
    from matconv_port.data.synthetic import make_synthetic_dataset

    info = make_synthetic_dataset(root, num_classes=max(1, videos // 2), videos_per_class=2, frames=frames,
                                  height=256, width=340, seed=1)
    if texture:
        _add_texture(root)
    return [(v["name"], v["frames"]) for v in info["videos"]][:videos]


def _add_texture(root: str) -> None:
    """Re-encode every frame with fine detail (smoothed noise, JPEG quality 90) so that
    it decodes about as slowly as a real UCF101 frame (~20 KB, ~1 ms), not like the
    flat synthetic frames (~0.1 ms), which would make the per-frame overheads look
    larger than they are on real data."""
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.normal(0, 40, (256, 340, 3)).astype(np.float32), (3, 3), 0)
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".jpg"):
                path = os.path.join(folder, name)
                img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
                n = noise if img.ndim == 3 else noise[:, :, 0]
                img = np.clip(img.astype(np.float32) + n[: img.shape[0], : img.shape[1]], 0, 255).astype(np.uint8)
                cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 90])


def _chunk_files(root, plans, chunks):
    out = []
    for ch in chunks:
        plan = plans[ch.video_index]
        files = {}
        for c in ch.clip_indices:
            clip = plan.clips[c]
            for f in clip.frames:
                files[rgb_path(root, plan.video, f)] = False
            for st in clip.flow:
                for i, k in enumerate(st):
                    files[flow_path(root, "u" if i % 2 == 0 else "v", plan.video, k)] = True
        out.append(list(files.items()))
    return out


def bare_decode(chunk_files) -> float:
    """Seconds for decoding the files of every chunk but the first (as timed below)."""
    t = time.perf_counter()
    for files in chunk_files[1:]:
        for path, grey in files:
            img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
            assert img is not None
    return time.perf_counter() - t


def pipeline(root, plans, chunks, norm, workers: int) -> float:
    """Seconds per clip in steady state (timed from the first chunk received, so the
    workers' start-up, paid once per run, is left out)."""
    ds = VideoChunkDataset(root, plans, chunks, norm)
    ds.use_slot_pool(workers, slots_per_worker=PREFETCH + 2)  # as the runner does
    loader = DataLoader(ds, batch_size=1, num_workers=workers, collate_fn=collate_single,
                        prefetch_factor=PREFETCH if workers else None)
    it = iter(loader)
    first = next(it)
    assert first.error is None, first.error
    first.release()
    t = time.perf_counter()
    n = 0
    for res in it:
        assert res.error is None, res.error
        n += len(res.clip_indices)
        res.release()
    return (time.perf_counter() - t) / max(n, 1)


def normalize_cost(root, plans, chunks, norm) -> float:
    """Seconds per clip of ``ChunkResult.normalized`` on the CPU (1 thread), the
    model-side step the workers leave out."""
    ds = VideoChunkDataset(root, plans, chunks, norm)
    results = [ds[i] for i in range(min(len(chunks), 8))]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results[0].normalized(norm)
        t = time.perf_counter()
        for r in results:
            r.normalized(norm)
        return (time.perf_counter() - t) / sum(len(r.clip_indices) for r in results)
    finally:
        torch.set_num_threads(threads)


def e2e(device: str, clips: int = 2, passes: int = 5) -> dict:
    from matconv_port.fusion import FusionOptions, build_fused_netspec
    from matconv_port.train.archs import vgg16
    from matconv_port.network import MatConvNetModel

    spec = build_fused_netspec(vgg16(101, "rgb", seed=1, init="he32", layout="paper"), vgg16(101, "flow", seed=2, init="he32", layout="paper"),
                               FusionOptions(frames=5))
    model = MatConvNetModel(spec).to(device).eval()
    from matconv_port.eval.model_io import score_vars

    heads = score_vars(model)
    rgb = torch.randn(clips * 5, 3, 256, 340, device=device)
    flow = torch.randn(clips * 5, 20, 256, 340, device=device)
    times = []
    for i in range(1 + passes):  # a warm-up, then the timed passes
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.inference_mode():
            out = model.forward_vars({"input": rgb, "input_flow": flow}, num_videos=clips, outputs=heads)
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    per_clip = statistics.median(times[1:]) / clips
    return {"heads": heads, "s_per_clip": per_clip, "s_per_video": per_clip * 20,
            "videos_per_s": 1.0 / (per_clip * 20),
            "split1_hours": per_clip * 20 * UCF101_SPLIT1_TEST / 3600.0, "clips_per_pass": clips,
            "out_shape": list(out[heads[0]].shape)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--e2e", action="store_true")
    ap.add_argument("--e2e-clips", type=int, default=2)
    ap.add_argument("--e2e-passes", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--results", default=None, help="append a markdown section to this file")
    ap.add_argument("--flat", action="store_true",
                    help="keep the flat synthetic frames (default: add real-frame-like detail)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    lines = []
    with tempfile.TemporaryDirectory() as root:
        t = time.perf_counter()
        vids = _dataset(root, args.videos, args.frames, texture=not args.flat)
        print(f"dataset: {len(vids)} videos x {args.frames} frames 256x340 in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        proto = get_protocol("fusion-paper")
        plans = [plan_video(proto, v, 1, n) for v, n in vids]
        chunks = [c for i, p in enumerate(plans) for c in make_chunks(i, p, 2)]
        norm = Normalization(np.array([123.7, 116.8, 103.9], np.float32), np.full(20, 128, np.float32), (224, 224))
        files = _chunk_files(root, plans, chunks)
        n_files = sum(len(f) for f in files)
        clips = sum(len(c.clip_indices) for c in chunks)
        bare, pipe, pipe0 = [], [], []
        bare_decode(files[:2])  # warm the page cache
        for _ in range(args.repeats):
            bare.append(bare_decode(files))
            pipe.append(pipeline(root, plans, chunks, norm, args.workers))
            pipe0.append(pipeline(root, plans, chunks, norm, 0))
        norm_s = normalize_cost(root, plans, chunks, norm)
        timed_clips = clips - len(chunks[0].clip_indices)
        timed_files = n_files - len(files[0])
        b = statistics.median(bare) / timed_clips  # s per clip
        p, p0 = statistics.median(pipe), statistics.median(pipe0)
        res = {
            "clips": clips, "jpeg_files": n_files,
            "bare_clips_per_s": 1 / b, "bare_files_per_s": timed_files / statistics.median(bare),
            f"pipeline_{args.workers}w_clips_per_s": 1 / p,
            "pipeline_0w_clips_per_s": 1 / p0,
            "ratio_per_worker": (1 / p) / max(args.workers, 1) / (1 / b),
            "ratio_in_process": (1 / p0) / (1 / b),
            "normalize_cpu_ms_per_clip": norm_s * 1000,
            "load_average": os.getloadavg()[0],
        }
        for k, v in res.items():
            print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    e = e2e(args.device, args.e2e_clips, args.e2e_passes) if args.e2e else None
    if e:
        for k, v in e.items():
            print(f"e2e {k}: {v}")

    if args.results:
        dev = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or platform.machine()
        lines.append(f"\n## eval data pipeline ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)\n")
        lines.append(f"Machine: {platform.platform()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
                     f"OpenCV {cv2.__version__}; device for e2e: {args.device} ({dev}).\n")
        detail = "flat synthetic frames" if args.flat else "frames re-encoded with real-frame-like detail (--flat: without)"
        lines.append(f"Data: synthetic UCF101-layout dataset, {len(vids)} videos x {args.frames} frames, 256 x 340 JPEGs, "
                     f"{detail}; "
                     f"protocol fusion-paper (20 clips x 5 frames x 23 channels per video), {clips} clips, "
                     f"{n_files} JPEG decodes per pass; median of {args.repeats} interleaved runs, steady state "
                     f"(worker start-up excluded); 1-min load average {res['load_average']:.1f} (shared machine).\n")
        lines.append("| measure | value |\n|---|---|")
        lines.append(f"| bare `np.fromfile`+`cv2.imdecode` loop, 1 process | {res['bare_clips_per_s']:.2f} clips/s ({res['bare_files_per_s']:.0f} JPEGs/s) |")
        lines.append(f"| pipeline, DataLoader {args.workers} workers | {res[f'pipeline_{args.workers}w_clips_per_s']:.2f} clips/s |")
        lines.append(f"| pipeline, in process (0 workers) | {res['pipeline_0w_clips_per_s']:.2f} clips/s |")
        lines.append(f"| **ratio per worker** ({args.workers} workers / {args.workers} / bare; goal >= 0.8) | **{res['ratio_per_worker']:.2f}** |")
        lines.append(f"| ratio in process (0 workers / bare) | {res['ratio_in_process']:.2f} |")
        lines.append(f"| model-side mirrors + u inversion + mean subtraction on the CPU, 1 thread | "
                     f"{res['normalize_cpu_ms_per_clip']:.1f} ms/clip (bare decode: {1000 * b:.1f} ms/clip) |")
        if e:
            lines.append(f"| e2e fused VGG-16 (random weights), {args.device}, {e['clips_per_pass']} clips per pass | "
                         f"{e['s_per_clip']:.2f} s/clip, {e['s_per_video']:.1f} s/video, {e['videos_per_s']:.4f} videos/s |")
            lines.append(f"| projected UCF101 split-1 test set (3,783 videos x 20 clips), network only | {e['split1_hours']:.1f} h |")
        with open(args.results, "a") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
