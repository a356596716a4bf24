"""Shared plumbing of the GPU benchmarks run by gpu_check.sh: the command line every
one of them takes (``--device DEV [--small] --report-md FILE``), interleaved timing
(median of >= 5 runs, CUDA-synchronised), and writing one markdown section atomically.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch


def parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    ap.add_argument("--small", action="store_true", help="tiny sizes: the CPU dry run of gpu_check.sh")
    ap.add_argument("--report-md", required=True, help="write this benchmark's markdown section here")
    ap.add_argument("--iters", type=int, default=None, help="timed runs per variant (>= 5)")
    return ap


def resolve(name: str) -> torch.device:
    from matconv_port.devices import resolve_device

    return resolve_device(name)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call: CUDA events on a GPU (after a synchronise), wall clock on CPU."""
    if device.type == "cuda":
        sync(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(runs: dict[str, Callable[[], object]], device: torch.device, iters: int, warmup: int = 2) -> dict:
    """Median seconds per variant: warm-up, then ``iters`` rounds, each running every
    variant once in a rotating order (no variant always first). Never a best-of."""
    iters = max(5, int(iters))
    for _ in range(warmup):
        for fn in runs.values():
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in runs}
    keys = list(runs)
    for i in range(iters):
        for k in keys[i % len(keys):] + keys[:i % len(keys)]:
            times[k].append(time_once(runs[k], device))
    return {k: statistics.median(v) for k, v in times.items()} | {"_iters": iters}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def write_md(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text.rstrip() + "\n")
    os.replace(tmp, path)


def verdict(value: float, goal: float) -> str:
    return "meets" if value >= goal else "**below**"
