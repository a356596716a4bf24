"""Flow extraction speed of ``matconv-port prepare`` on 256-high video (CPU).

Measures, on the same 340 x 256 frame pairs (a textured moving square, like the tests):

1. OpenCV's own TV-L1 called directly (``cv2.optflow.DualTVL1OpticalFlow_create().calc``):
   the reference, ratio 1.0;
2. our wrapper ``create_flow(method)`` for tvl1, farneback, dis (flow only), and the
   whole per-frame work of ``prepare`` after decoding (flow + grey encoding + three
   atomic JPEG writes), timed interleaved with the reference so drift cancels;
3. OpenCV with 1 thread (the per-process setting of ``--workers N > 1``), to project
   the time per extra core;
4. TV-L1 in N processes with one thread each (what ``--workers N`` runs), aggregate
   pairs/s after start-up;
5. end-to-end ``prepare_videos`` (decode an MJPG .avi, resize, RGB + flow JPEGs) with
   ``--workers 1`` and ``--workers 2`` (small job: includes the workers' start-up,
   ~2-3 s each because ``import matconv_port`` imports torch).

Timings are medians of per-pair times, the variants interleaved pair by pair, so load
from other processes on the machine affects them alike.

Projection for UCF101: 2.5 M frames (~ the same number of flow fields).

Run: ``python benchmarks/bench_flow.py [--pairs 4] [--json out.json]``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from matconv_port.data.example_videos import moving_square_frames, write_video
from matconv_port.data.flow import create_flow, flow_to_gray, to_gray
from matconv_port.data.prepare import prepare_videos
from matconv_port.data.writers import VideoOutput

UCF101_FRAMES = 2.5e6


def _pairs(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    frames = moving_square_frames(frames=n + 1, width=340, height=256, velocity=(4.0, 2.0), square=80)
    grays = [to_gray(f) for f in frames]
    return list(zip(grays[:-1], grays[1:]))


def _time(fn, pairs) -> float:
    t0 = time.perf_counter()
    for a, b in pairs:
        fn(a, b)
    return time.perf_counter() - t0


def bench_methods(pairs, repeats: int, tmp: Path) -> dict:
    """Median seconds per frame pair, the three variants timed back to back on each pair
    (rotating their order), so that load from other processes hits them alike."""
    raw = cv2.optflow.DualTVL1OpticalFlow_create()
    raw_fn = lambda a, b: raw.calc(a, b, None)  # noqa: E731
    out: dict = {}
    for method in ("tvl1", "farneback", "dis"):
        wrap = create_flow(method)
        writer = VideoOutput(tmp, f"bench_{method}")

        def full(a, b, wrap=wrap, writer=writer):  # flow + grey encoding + u/v JPEG writes + one RGB JPEG
            f = wrap(a, b)
            writer.add_frame(cv2.cvtColor(b, cv2.COLOR_GRAY2BGR))
            writer.add_flow_gray(flow_to_gray(f[..., 0]), flow_to_gray(f[..., 1]))

        variants = {"opencv_direct": raw_fn, "wrapper": wrap, "prepare": full} if method == "tvl1" else {"wrapper": wrap, "prepare": full}
        times: dict[str, list[float]] = {k: [] for k in variants}
        reps = repeats if method == "tvl1" else repeats * 10
        names = list(variants)
        for r in range(reps):
            for i, (a, b) in enumerate(pairs):
                shift = (r * len(pairs) + i) % len(names)
                for name in names[shift:] + names[:shift]:
                    t0 = time.perf_counter()
                    variants[name](a, b)
                    times[name].append(time.perf_counter() - t0)
        row = {"pairs_timed": len(times["wrapper"])}
        for name, ts in times.items():
            row[f"{name}_fps"] = 1.0 / float(np.median(ts))
        out[method] = row
    ref = out["tvl1"]["opencv_direct_fps"]
    for row in out.values():
        row["wrapper_ratio_to_opencv_tvl1"] = row["wrapper_fps"] / ref
        row["prepare_ratio_to_opencv_tvl1"] = row["prepare_fps"] / ref
    return out


def _tvl1_worker(n_pairs: int) -> int:
    cv2.setNumThreads(1)
    algo = cv2.optflow.DualTVL1OpticalFlow_create()
    for a, b in _pairs(n_pairs):
        algo.calc(a, b, None)
    return n_pairs


def bench_process_scaling(n_pairs: int, max_workers: int) -> list[dict]:
    """Aggregate TV-L1 pairs/s of N processes with 1 OpenCV thread each (what --workers N runs),
    measured after the pool has started (process start-up excluded)."""
    import multiprocessing

    rows = []
    ctx = multiprocessing.get_context("spawn")
    for n in range(1, max_workers + 1):
        with ctx.Pool(n) as pool:
            pool.map(_tvl1_worker, [1] * n)  # start-up and warm-up
            t0 = time.perf_counter()
            done = sum(pool.map(_tvl1_worker, [n_pairs] * n))
            dt = time.perf_counter() - t0
        rows.append({"processes": n, "pairs": done, "seconds": dt, "aggregate_fps": done / dt})
    return rows


def bench_end_to_end(tmp: Path, frames: int, method: str, workers: int, videos: int) -> dict:
    src = tmp / f"videos_{method}"
    if not src.exists():
        for i in range(videos):
            write_video(src / f"clip{i}.avi", moving_square_frames(frames=frames, width=320, height=240,
                                                                    velocity=(3.0, 1.0), square=70, seed=i))
    out = tmp / f"out_{method}_{workers}"
    t0 = time.perf_counter()
    s = prepare_videos(src, out, flow=method, workers=workers, progress=False)
    dt = time.perf_counter() - t0
    assert not s.failed, s.lines()
    return {"method": method, "workers": workers, "videos": videos, "frames_per_video": frames,
            "seconds": dt, "frames_per_second": videos * frames / dt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=4, help="frame pairs per timing round")
    ap.add_argument("--repeats", type=int, default=3, help="TV-L1 rounds (10x as many for farneback/dis)")
    ap.add_argument("--e2e-frames", type=int, default=8)
    ap.add_argument("--json", type=str, default=None)
    args = ap.parse_args()
    pairs = _pairs(args.pairs)
    load_before = os.getloadavg()
    res: dict = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "opencv": cv2.__version__,
                             "opencv_threads_default": cv2.getNumThreads(), "frame": "340x256 grey uint8"}}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        res["threads_default"] = bench_methods(pairs, args.repeats, tmp / "a")
        default_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        res["threads_1"] = bench_methods(pairs, args.repeats, tmp / "b")
        cv2.setNumThreads(default_threads)
        res["tvl1_process_scaling"] = bench_process_scaling(args.pairs, os.cpu_count() or 1)
        res["end_to_end"] = [bench_end_to_end(tmp, args.e2e_frames, m, w, 2) for m in ("dis", "tvl1") for w in (1, 2)]
    res["machine"]["loadavg_1min_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    one = res["threads_1"]
    res["ucf101_projection_hours"] = {
        m: {
            "this_machine_default_threads": UCF101_FRAMES / res["threads_default"][m]["prepare_fps"] / 3600,
            "per_core_count_1": UCF101_FRAMES / one[m]["prepare_fps"] / 3600,
            "note": "with N cores (--workers N): per_core_count_1 / N, assuming process-level scaling",
        }
        for m in one
    }
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
