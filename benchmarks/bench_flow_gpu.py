"""TV-L1 flow speed: ``tvl1-torch`` (PyTorch, batched, on ``--device``) against OpenCV's CPU
TV-L1 on every core of the same machine, and the whole ``prepare`` of full-size videos.

Usage (the ``benchmarks/gpu_check.sh`` interface)::

    python3 benchmarks/bench_flow_gpu.py --device cuda [--small] --report-md OUT.md [--json OUT.json]
    python3 benchmarks/bench_flow_gpu.py --device cpu --cv-procs 2 --report-md benchmarks/RESULTS_flow.md

1. **Frame pairs/s at 256x340** (``--small``: 64x80) on a textured scene translating by
   a sub-pixel step (more iterations than a flat scene: closer to real video). One round =
   ``tvl1-torch`` on ``--batch-pairs`` pairs at once (default: sized from free memory, at most
   64 here) and OpenCV's ``DualTVL1OpticalFlow`` on ``--cv-procs`` processes (default: all
   cores with a GPU; on ``--device cpu`` as many as ``--torch-threads``, default 1: a per-core
   comparison) with one thread each (what ``prepare --workers N`` runs) over ``--cv-procs`` pairs;
   ``--repeats`` rounds (>= 5) interleaved; medians reported; the ratio is of the medians.
   Without opencv-contrib (``cv2.optflow``; the GPU machine has only opencv-python-headless)
   the OpenCV half says "OpenCV contrib not available". A contrib wheel carried to the
   machine is used with ``--opencv-wheel PATH.whl``: it is unpacked to a temporary folder
   that goes first on the OpenCV processes' ``PYTHONPATH`` (nothing is installed).
2. **Whole prepare** of ``--videos`` synthetic textured videos (320x240 MJPG -> 340x256;
   ``--small``: 2 short 160x120 videos at short side 64): decode + resize, flow, JPEG
   writing, timed per stage in one process; frames/s, the GPU busy fraction
   (``torch.cuda.utilization`` sampled every 50 ms when pynvml is there; else the share of
   wall time spent inside the flow call, which bounds it from above) and the next bottleneck.

Machine, torch, OpenCV, commit and date go into the report.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def textured_frames(n: int, height: int, width: int, step=(1.7, 0.9), seed: int = 0) -> list[np.ndarray]:
    """``n`` BGR frames of a smooth random texture translating by ``step`` pixels per frame."""
    import cv2

    rng = np.random.default_rng(seed)
    pad = int(abs(step[0]) * n + abs(step[1]) * n) + 8
    base = rng.integers(0, 255, size=((height + 2 * pad) // 4 + 2, (width + 2 * pad) // 4 + 2)).astype(np.uint8)
    big = cv2.resize(base, ((width + 2 * pad), (height + 2 * pad)), interpolation=cv2.INTER_CUBIC)
    out = []
    for k in range(n):
        m = np.float32([[1, 0, -pad + k * step[0]], [0, 1, -pad + k * step[1]]])
        # frame k shows the texture moved by k * step: dst(x) = big(x - k step + pad)
        m[:, 2] = [pad - k * step[0], pad - k * step[1]]
        g = cv2.warpAffine(big, m, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        out.append(cv2.cvtColor(g, cv2.COLOR_GRAY2BGR))
    return out


# ----------------------------------------------------------------------------- OpenCV workers
def _cv_init() -> None:
    import cv2

    cv2.setNumThreads(1)


def _cv_pair(pair) -> float:
    import cv2

    global _CV_ALGO
    try:
        algo = _CV_ALGO
    except NameError:
        algo = _CV_ALGO = cv2.optflow.DualTVL1OpticalFlow_create()
    t0 = time.perf_counter()
    algo.calc(pair[0], pair[1], None)
    return time.perf_counter() - t0


def _cv_probe(_=None) -> str:
    import cv2

    return f"{cv2.__version__} contrib={hasattr(cv2, 'optflow')}"


def _machine() -> dict:
    import cv2
    import torch

    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or os.environ.get("GPU_CHECK_COMMIT", "?")
    except Exception:
        commit = os.environ.get("GPU_CHECK_COMMIT", "?")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "platform": platform.platform(),
            "gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda, "opencv": cv2.__version__,
            "commit": commit, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "torch_threads": torch.get_num_threads()}


def bench_pairs(args, device) -> dict:
    import torch

    from matconv_port.data.flow import to_gray
    from matconv_port.data.prepare import auto_batch_pairs
    from matconv_port.data.tvl1_torch import tvl1_flow

    h, w = (64, 80) if args.small else (256, 340)
    batch = args.batch_pairs or (4 if args.small else min(64, auto_batch_pairs(device, h, w)))
    procs = args.cv_procs or os.cpu_count() or 1
    grays = [to_gray(f) for f in textured_frames(max(batch, procs) + 1, h, w)]
    a = torch.as_tensor(np.stack(grays[:batch])).to(device)
    b = torch.as_tensor(np.stack(grays[1:batch + 1])).to(device)
    cv_pairs = [(grays[k], grays[k + 1]) for k in range(procs)]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    stats: dict = {}
    tvl1_flow(a[:1], b[:1], device=device, stats=stats)  # warm-up (CUDA context, kernels)
    sync()
    pool = None
    cv_note = ""
    if args.opencv_wheel:
        folder = tempfile.mkdtemp(prefix="cv_contrib_")
        with zipfile.ZipFile(args.opencv_wheel) as z:
            z.extractall(folder)
        os.environ["PYTHONPATH"] = folder + os.pathsep + os.environ.get("PYTHONPATH", "")
        cv_note = f" (from {Path(args.opencv_wheel).name})"
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(procs, initializer=_cv_init)
    probe = pool.map(_cv_probe, range(procs))[0]
    has_contrib = "contrib=True" in probe
    if has_contrib:
        pool.map(_cv_pair, cv_pairs)  # warm-up: algorithm objects, page faults
    torch_t, cv_t = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        st: dict = {}
        tvl1_flow(a, b, device=device, stats=st)
        sync()
        torch_t.append(time.perf_counter() - t0)
        if has_contrib:
            t0 = time.perf_counter()
            pool.map(_cv_pair, cv_pairs, chunksize=1)
            cv_t.append(time.perf_counter() - t0)
    pool.close()
    pool.join()
    torch_pps = batch / statistics.median(torch_t)
    res = {"size": f"{h}x{w}", "batch_pairs": batch, "repeats": args.repeats, "iterations_per_batch": st.get("iterations"),
           "torch_s": torch_t, "torch_pairs_per_s": torch_pps, "opencv": f"{probe}{cv_note}", "cv_procs": procs}
    if has_contrib:
        cv_pps = procs / statistics.median(cv_t)
        res.update(cv_s=cv_t, cv_pairs_per_s=cv_pps, ratio=torch_pps / cv_pps)
    else:
        res["cv_note"] = "OpenCV contrib not available (cv2.optflow missing): install or carry opencv-contrib-python-headless (--opencv-wheel)"
    return res


class _Busy:
    """Samples ``torch.cuda.utilization`` (pynvml) every 50 ms in a thread."""

    def __init__(self, device):
        import torch

        self.samples: list[int] = []
        self.ok = False
        if device.type == "cuda":
            try:
                torch.cuda.utilization(device)
                self.ok = True
            except Exception:
                self.ok = False
        self.device = device
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import torch

        while not self._stop.is_set():
            self.samples.append(torch.cuda.utilization(self.device))
            time.sleep(0.05)

    def __enter__(self):
        if self.ok:
            self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.ok:
            self._t.join()


def bench_prepare(args, device) -> dict:
    """The whole prepare of a few videos, one process, time per stage."""
    from matconv_port.data import prepare as prep
    from matconv_port.data import tvl1_torch
    from matconv_port.data.example_videos import write_video
    from matconv_port.data.writers import VideoOutput

    n_videos = 2 if args.small else args.videos
    frames = 8 if args.small else args.frames
    w, h, short = (160, 120, 64) if args.small else (320, 240, 256)
    timers = {"decode+resize": 0.0, "flow": 0.0, "jpeg": 0.0}

    def timed(key, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timers[key] += time.perf_counter() - t0
        return wrapper

    def timed_iter(fn):
        def wrapper(*a, **k):
            it = fn(*a, **k)
            while True:
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    timers["decode+resize"] += time.perf_counter() - t0
                    return
                timers["decode+resize"] += time.perf_counter() - t0
                yield item
        return wrapper

    with tempfile.TemporaryDirectory() as tmp:
        for v in range(n_videos):
            write_video(Path(tmp) / "v" / f"vid{v}.avi", textured_frames(frames, h, w, seed=v))
        saved = (prep.iter_frames, VideoOutput.add_frame, VideoOutput.add_flow, tvl1_torch.TVL1Torch.pairs)
        prep.iter_frames = timed_iter(prep.iter_frames)
        VideoOutput.add_frame = timed("jpeg", VideoOutput.add_frame)
        VideoOutput.add_flow = timed("jpeg", VideoOutput.add_flow)  # quantise + 2 JPEGs
        tvl1_torch.TVL1Torch.pairs = timed("flow", tvl1_torch.TVL1Torch.pairs)  # includes the copy back (a sync)
        try:
            with _Busy(device) as busy:
                t0 = time.perf_counter()
                summary = prep.prepare_videos(Path(tmp) / "v", Path(tmp) / "d", flow="tvl1-torch", device=str(device),
                                              batch_pairs=args.batch_pairs, short_side=short, progress=False)
                wall = time.perf_counter() - t0
        finally:
            prep.iter_frames, VideoOutput.add_frame, VideoOutput.add_flow, tvl1_torch.TVL1Torch.pairs = saved
    done = sum(r.frames for r in summary.done)
    if len(summary.done) != n_videos:
        raise RuntimeError(f"prepare failed: {[r.error for r in summary.failed]}")
    other = max(wall - sum(timers.values()), 0.0)
    shares = {k: v / wall for k, v in timers.items()}
    shares["other"] = other / wall
    busy_frac = (statistics.mean(busy.samples) / 100.0) if busy.samples else None
    cpu_stages = {k: v for k, v in timers.items() if k != "flow"}
    if shares["flow"] > 0.5:
        nxt = (f"flow itself ({shares['flow']:.0%} of wall time); after it "
               f"{max(cpu_stages, key=cpu_stages.get)} ({max(cpu_stages.values()) / wall:.0%}), which --workers N overlaps")
    else:
        k = max(cpu_stages, key=cpu_stages.get)
        nxt = (f"{k} on the CPU ({cpu_stages[k] / wall:.0%} of wall time; the GPU waits): run --workers N "
               f"(processes overlap decoding/JPEG with other videos' flow)")
    return {"videos": n_videos, "frames": done, "size": f"{w}x{h} -> short side {short}", "wall_s": wall,
            "frames_per_s": done / wall, "stage_s": timers, "stage_share": shares,
            "gpu_busy": busy_frac, "gpu_busy_source": "torch.cuda.utilization (pynvml)" if busy_frac is not None
            else "not measured (no pynvml or not CUDA): flow share of wall time bounds it from above",
            "next_bottleneck": nxt}


def markdown(m: dict, p: dict, e: dict, device) -> str:
    lines = [f"## TV-L1 flow: tvl1-torch on {device} vs OpenCV CPU TV-L1 (`benchmarks/bench_flow_gpu.py`)", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, GPU {m['gpu']}; {m['platform']}; torch {m['torch']} "
             f"(CUDA {m['cuda']}, {m['torch_threads']} CPU threads), OpenCV {m['opencv']}; commit {m['commit']}; {m['date']}.", "",
             f"### Frame pairs/s at {p['size']} (textured scene, 1.7/0.9 px per frame; median of {p['repeats']} interleaved rounds)", "",
             "| method | pairs per round | median s/round | pairs/s |", "|---|---|---|---|",
             f"| tvl1-torch, {device}, batch {p['batch_pairs']} | {p['batch_pairs']} | {statistics.median(p['torch_s']):.3f} | {p['torch_pairs_per_s']:.2f} |"]
    if "cv_pairs_per_s" in p:
        lines.append(f"| OpenCV DualTVL1, {p['cv_procs']} processes x 1 thread | {p['cv_procs']} | "
                     f"{statistics.median(p['cv_s']):.3f} | {p['cv_pairs_per_s']:.2f} |")
        lines += ["", f"**Ratio tvl1-torch / OpenCV (all {p['cv_procs']} cores): {p['ratio']:.2f}x.** "
                      f"Iterations of the last batch (all levels and warps): {p['iterations_per_batch']}. OpenCV: {p['opencv']}."]
    else:
        lines += ["", f"OpenCV: {p['cv_note']} ({p['opencv']}). Iterations of the last batch: {p['iterations_per_batch']}."]
    lines += ["", f"### Whole prepare: {e['videos']} videos, {e['frames']} frames, {e['size']}, --flow tvl1-torch --device {device}", "",
              f"{e['frames_per_s']:.1f} frames/s ({e['wall_s']:.1f} s). Time per stage (one process): " +
              ", ".join(f"{k} {v:.2f} s ({e['stage_share'][k]:.0%})" for k, v in e["stage_s"].items()) +
              f", other {e['stage_share']['other']:.0%}.",
              "", "GPU busy: " + (f"{e['gpu_busy']:.0%} ({e['gpu_busy_source']})" if e["gpu_busy"] is not None
                                  else e["gpu_busy_source"]) + ".", "", f"Next bottleneck: {e['next_bottleneck']}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="tiny sizes (CPU dry run, < 1 min)")
    ap.add_argument("--report-md", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-pairs", type=int, default=None)
    ap.add_argument("--cv-procs", type=int, default=None,
                    help="OpenCV processes of one thread each (default: all cores with a GPU; --torch-threads on CPU, "
                         "so that both sides use the same cores)")
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="torch CPU threads when --device cpu (default 1: on a shared machine more threads spin and "
                         "contend; compare per core)")
    ap.add_argument("--opencv-wheel", default=None, help="an opencv-contrib-python(-headless) wheel to use for the OpenCV side")
    ap.add_argument("--videos", type=int, default=3)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--skip-prepare", action="store_true")
    args = ap.parse_args(argv)
    if args.repeats < 5:
        ap.error("--repeats must be at least 5 (medians of >= 5)")
    import torch

    from matconv_port.devices import resolve_device

    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, args.torch_threads))
        if args.cv_procs is None:
            args.cv_procs = max(1, args.torch_threads)
    m = _machine()
    t0 = time.perf_counter()
    p = bench_pairs(args, device)
    print(json.dumps({k: v for k, v in p.items() if not k.endswith("_s")}), flush=True)
    e = {"videos": 0, "frames": 0, "size": "-", "wall_s": 0.0, "frames_per_s": 0.0, "stage_s": {}, "stage_share": {"other": 0.0},
         "gpu_busy": None, "gpu_busy_source": "skipped", "next_bottleneck": "skipped"} if args.skip_prepare else bench_prepare(args, device)
    print(json.dumps({k: v for k, v in e.items()}), flush=True)
    md = markdown(m, p, e, device)
    print(md)
    print(f"[bench_flow_gpu: {time.perf_counter() - t0:.1f} s]")
    if args.report_md:
        Path(args.report_md).write_text(md)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": m, "pairs": p, "prepare": e}, indent=1))
    del torch
    return 0


if __name__ == "__main__":
    sys.exit(main())
