"""onnxruntime (CPU) vs PyTorch inference of the exported fused two-stream VGG-16.

Builds the paper's fused net (``matconv_port.fusion``: two full-size VGG-16 streams
with random weights, Conv3D fusion after relu5_3, 3D pooling, two heads; 101 classes),
exports it with :func:`matconv_port.export.export_onnx`, and times the PyTorch model
(``MatConvNetModel.forward``: the prediction vars) and the onnxruntime session on the
SAME input (``videos`` clips of ``frames`` frames, ``size x size``), interleaved,
median of the timed runs, in one process with the same thread count.

    python benchmarks/bench_onnx.py [--frames 5] [--videos 1] [--size 224] [--iters 5]
        [--exporter auto] [--work /tmp/matconv_bench] [--narrow] [--low-memory]
        [--append benchmarks/RESULTS_export.md]

ratio = PyTorch time / onnxruntime time (> 1: onnxruntime is faster).
``--narrow``: conv widths 4,6,8,8,8 and fc 16 (a quick smoke run, not the benchmark).
``--low-memory``: time PyTorch first, free it, then time onnxruntime (not interleaved).
The ONNX file (about 1.1 GB at full size) goes to ``--work``, never into the repository.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import os
import statistics
import sys
import time

import numpy as np
import torch
from run_all import cpu_name  # benchmarks/ is on sys.path when a script runs


def build_model(frames: int, narrow: bool, size: int):
    from matconv_port.fusion import FusionOptions, build_fused_netspec
    from matconv_port.train.archs import vgg16
    from matconv_port.network import MatConvNetModel

    kw = {"widths": [4, 6, 8, 8, 8], "fc_width": 16, "fc6_size": max(1, size // 32)} if narrow else {}
    spec = build_fused_netspec(vgg16(101, "rgb", seed=1, init="he32", layout="paper", **kw),
                               vgg16(101, "flow", seed=2, init="he32", layout="paper", **kw), FusionOptions(frames=frames))
    return MatConvNetModel(spec, release_spec_values=True).eval()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--videos", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--exporter", default="auto")
    ap.add_argument("--work", default="/tmp/matconv_bench")
    ap.add_argument("--narrow", action="store_true")
    ap.add_argument("--low-memory", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads for both (default: torch's)")
    ap.add_argument("--append", help="append a result row to this markdown file")
    ap.add_argument("--label", default="", help="note for the appended row")
    args = ap.parse_args()

    import onnxruntime as ort

    from matconv_port.export import export_onnx

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    os.makedirs(args.work, exist_ok=True)
    path = os.path.join(args.work, f"fused_vgg16{'_narrow' if args.narrow else ''}_f{args.frames}.onnx")

    t0 = time.perf_counter()
    model = build_model(args.frames, args.narrow, args.size)
    t_build = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.params.values())
    print(f"built the fused net: {len(model.layer_specs)} layers, {n_params / 1e6:.1f}M params ({t_build:.1f} s)",
          flush=True)

    t0 = time.perf_counter()
    export_onnx(model, path, frames=args.frames, size=(args.size, args.size), check=False, exporter=args.exporter,
                log=lambda m: print(m, file=sys.stderr))
    t_export = time.perf_counter() - t0
    print(f"exported {path} ({os.path.getsize(path) / 2 ** 20:.0f} MiB, {t_export:.1f} s)", flush=True)

    gen = torch.Generator().manual_seed(0)
    n = args.videos * args.frames
    xs = [torch.randn(n, 3, args.size, args.size, generator=gen) * 50,
          torch.randn(n, 20, args.size, args.size, generator=gen) * 20]
    names = model.input_vars
    assert names == ["input", "input_flow"], names
    feed = {k: x.numpy() for k, x in zip(names, xs)}

    def run_torch():
        with torch.no_grad():
            return [y.numpy() for y in model(*xs)]

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    session = None

    def run_ort():
        return session.run(None, feed)

    times: dict[str, list[float]] = {"torch": [], "ort": []}

    def timed(name, fn):
        t = time.perf_counter()
        out = fn()
        times[name].append(time.perf_counter() - t)
        return out

    if args.low_memory:
        ref = run_torch()  # warm-up
        for _ in range(args.iters):
            timed("torch", run_torch)
        del model
        gc.collect()
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        got = run_ort()
        for _ in range(args.iters):
            timed("ort", run_ort)
    else:
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        ref, got = run_torch(), run_ort()  # warm-up
        for _ in range(args.iters):
            timed("torch", run_torch)
            timed("ort", run_ort)
    rel = max(float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)) for a, b in zip(ref, got))
    med_t, med_o = statistics.median(times["torch"]), statistics.median(times["ort"])
    ratio = med_t / med_o
    machine = f"{cpu_name()}, {os.cpu_count()} cores visible, {threads} threads"
    versions = f"torch {torch.__version__}, onnxruntime {ort.__version__}"
    print(f"PyTorch {med_t:.3f} s, onnxruntime {med_o:.3f} s per batch of {args.videos} x {args.frames} frames "
          f"at {args.size}x{args.size}; ratio (PyTorch / onnxruntime) {ratio:.2f}; max rel diff {rel:.2g}")
    print(f"runs: torch {[round(t, 3) for t in times['torch']]}, ort {[round(t, 3) for t in times['ort']]}")
    print(f"machine: {machine}; {versions}")
    if args.append:
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        kind = "narrow (4,6,8,8,8)" if args.narrow else "full VGG-16"
        row = (f"| {date} | {kind} | {args.videos} x {args.frames} @ {args.size} | {med_t:.3f} | {med_o:.3f} | "
               f"{ratio:.2f} | {rel:.2g} | {args.iters}{' seq' if args.low_memory else ''} | {machine}; {versions} | "
               f"{args.label} |\n")
        with open(args.append, "a") as fh:
            fh.write(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
