"""Forward throughput of the full-size fused two-stream VGG-16 (random weights) built by
``matconv_port.fusion`` and run by the MatConvNet graph executor, as a ratio to a
plain PyTorch implementation of the same net (two nn.Sequential VGG-16 towers to
relu5_3, torch.cat, nn.Conv3d + ReLU + nn.MaxPool3d, and fc6/fc7/fc8 heads in their
fastest plain form: torchvision's Linear classifier at 224 x 224, convolutions only
where whole frames give score maps), with the SAME weights, on the same input, in the
same process (runs interleaved, median of at least 5 timed runs).

Also prints the parameter counts of the fusion variants (full-size VGG-16, shapes only).

    python benchmarks/bench_fusion_forward.py [--sizes 224x224,256x340] [--batch 1] [--iters 5]

ratio = plain time / our time (1.0: the graph executor adds nothing; goal >= 0.95).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

from matconv_port.fusion import FusionOptions, build_fused_netspec
from matconv_port.fusion.describe import param_table
from matconv_port.train.archs import vgg16
from matconv_port.network import MatConvNetModel


# ---------------------------------------------------------------------------- plain PyTorch
# the plain net and the weight copy are shared with the GPU benchmarks
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fused_nets import FULL_WIDTHS, PlainFusedVGG16, copy_weights  # noqa: E402


# ---------------------------------------------------------------------------- timing
def _time(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds: all threads) of one call."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def bench(model, plains: dict, frames: int, batch: int, size: tuple[int, int], iters: int, warmup: int) -> dict:
    """``plains``: the plain net with Linear heads and with conv heads; at 224 x 224 (a 7 x 7
    map into fc6) the Linear one is the baseline, else the conv one (score maps)."""
    h, w = size
    g = torch.Generator().manual_seed(0)
    rgb = torch.randn(batch * frames, 3, h, w, generator=g) * 50
    flow = torch.randn(batch * frames, 20, h, w, generator=g) * 20
    linear = (h, w) == (224, 224)
    plain = plains["linear" if linear else "conv"]
    runs = {"ours": lambda: model(rgb, flow, num_videos=batch), "plain": lambda: plain(rgb, flow)}
    times: dict[str, list] = {k: [] for k in runs}
    with torch.inference_mode():
        ours_out, plain_out = runs["ours"](), runs["plain"]()
        diff = max(float((a.flatten(1) - b.flatten(1)).abs().max() / b.abs().max().clamp_min(1e-30))
                   for a, b in zip(ours_out, plain_out))
        for _ in range(warmup):
            for fn in runs.values():
                fn()
        keys = list(runs)
        for i in range(iters):  # interleaved, rotating who goes first
            for k in keys[i % len(keys):] + keys[:i % len(keys)]:
                times[k].append(_time(runs[k]))
    med = {k: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) for k, v in times.items()}
    return {"batch_videos": batch, "frames": frames, "size": f"{h}x{w}", "iters": iters, "warmup": warmup,
            "wall_s": {k: m[0] for k, m in med.items()}, "cpu_s": {k: m[1] for k, m in med.items()},
            "ratio_wall": med["plain"][0] / med["ours"][0], "ratio_cpu": med["plain"][1] / med["ours"][1],
            "baseline": "Linear classifier" if linear else "conv heads (score maps)",
            "max_rel_diff": diff, "score_map": list(ours_out[0].shape[2:]),
            "load_avg": os.getloadavg()[0]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="224x224,256x340")
    ap.add_argument("--batch", default="1", help="videos per batch, comma-separated (e.g. 1,8)")
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--narrow", action="store_true",
                    help="quarter-width VGG-16 (16..128 channels, fc 1024): a quick run, not the benchmark")
    args = ap.parse_args(argv)
    kw = {"widths": [16, 32, 64, 128, 128], "fc_width": 1024} if args.narrow else {}
    if args.threads:
        torch.set_num_threads(args.threads)

    print("parameter counts (full-size VGG-16 streams, 101 classes):")
    for label, c in param_table():
        print(f"  {c['total'] / 1e6:8.2f}M  (spatial {c['spatial'] / 1e6:.2f}M, temporal {c['temporal'] / 1e6:.2f}M, "
              f"fusion {c['fusion'] / 1e6:.2f}M)  {label}")

    t0 = time.perf_counter()
    spec = build_fused_netspec(vgg16(101, "rgb", seed=1, init="he32", layout="paper", **kw),
                               vgg16(101, "flow", seed=2, init="he32", layout="paper", **kw),
                               FusionOptions(frames=args.frames))
    model = MatConvNetModel(spec, release_spec_values=True).eval()
    del spec
    sizes = [tuple(int(v) for v in size.lower().split("x")) for size in args.sizes.split(",")]
    plains = {}
    for kind in dict.fromkeys("linear" if hw == (224, 224) else "conv" for hw in sizes):
        plains[kind] = plain = PlainFusedVGG16(args.frames, widths=kw.get("widths", FULL_WIDTHS),
                                               fc_width=kw.get("fc_width", 4096), classifier=kind).eval()
        if len(plains) > 1:  # the towers and the fusion are the same modules; only the heads differ
            first = next(iter(plains.values()))
            plain.rgb, plain.flow, plain.fuse = first.rgb, first.flow, first.fuse
        copy_weights(plain, model)
    print(f"built both nets in {time.perf_counter() - t0:.1f} s; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")

    results = []
    for h, w in sizes:
        for batch in (int(b) for b in args.batch.split(",")):
            r = bench(model, plains, args.frames, batch, (h, w), args.iters, args.warmup)
            results.append(r)
            ws = r["wall_s"]
            print(f"  {r['size']:>8} batch {batch} x {args.frames} frames (load avg {r['load_avg']:.1f}): wall ours "
                  f"{ws['ours']:.2f} s, plain ({r['baseline']}) {ws['plain']:.2f} s; ratio {r['ratio_wall']:.3f}; "
                  f"CPU-time ratio {r['ratio_cpu']:.3f}; score map {r['score_map']}, "
                  f"max rel diff {r['max_rel_diff']:.1e}", flush=True)
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump({"results": results, "torch": torch.__version__, "threads": torch.get_num_threads(),
                       "machine": platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
                      f, indent=1)
        os.replace(args.json + ".tmp", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
