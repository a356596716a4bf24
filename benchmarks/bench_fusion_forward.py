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
from torch import nn

from matconv_port.fusion import FusionOptions, build_fused_netspec
from matconv_port.fusion.describe import param_table
from matconv_port.fusion.vgg import VGG16_BLOCKS, vgg16_stream_netspec
from matconv_port.network import MatConvNetModel


# ---------------------------------------------------------------------------- plain PyTorch
def _tower(in_ch: int, widths: list[int]) -> nn.Sequential:
    mods: list[nn.Module] = []
    c = in_ch
    for (b, n, _), width in zip(VGG16_BLOCKS, widths):
        for _ in range(n):
            mods += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)]
            c = width
        if b < 5:
            mods.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*mods)


def _head(classes: int, linear: bool, c: int = 512, fc: int = 4096) -> nn.Sequential:
    """torchvision's VGG classifier (``linear``: Linear layers on the flattened 7 x 7
    map) or the same as convolutions (score maps on larger inputs)."""
    if linear:
        return nn.Sequential(nn.Flatten(1), nn.Linear(c * 7 * 7, fc), nn.ReLU(inplace=True), nn.Dropout(0.85),
                             nn.Linear(fc, fc), nn.ReLU(inplace=True), nn.Dropout(0.85), nn.Linear(fc, classes))
    return nn.Sequential(nn.Conv2d(c, fc, 7), nn.ReLU(inplace=True), nn.Dropout(0.85),
                         nn.Conv2d(fc, fc, 1), nn.ReLU(inplace=True), nn.Dropout(0.85),
                         nn.Conv2d(fc, classes, 1))


class PlainFusedVGG16(nn.Module):
    """What a PyTorch user would write for the paper's fused net."""

    def __init__(self, frames: int, classes: int = 101, linear: bool = False, widths: list[int] | None = None,
                 fc: int = 4096):
        super().__init__()
        self.frames = frames
        widths = widths or [w for _, _, w in VGG16_BLOCKS]
        self.c = c = widths[-1]
        self.rgb, self.flow = _tower(3, widths), _tower(20, widths)
        self.fuse = nn.Conv3d(2 * c, c, 3, padding=1)
        self.pool = nn.MaxPool3d((frames, 2, 2), (2, 2, 2))
        self.head_rgb, self.head_flow = _head(classes, linear, c, fc), _head(classes, linear, c, fc)

    def _pool3d(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        y = self.pool(x.view(n // self.frames, self.frames, c, h, w).transpose(1, 2))
        return y.transpose(1, 2).reshape(-1, c, y.shape[3], y.shape[4])

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor):
        a, b = self.rgb(rgb), self.flow(flow)
        n, _, h, w = a.shape
        v = torch.cat([a, b], 1).view(n // self.frames, self.frames, 2 * self.c, h, w).transpose(1, 2)
        fused = torch.relu(self.fuse(v)).transpose(1, 2).reshape(n, self.c, h, w)
        return self.head_rgb(self._pool3d(fused)), self.head_flow(self._pool3d(b))


def copy_weights(plain: PlainFusedVGG16, model: MatConvNetModel) -> None:
    """Our params (already in torch layout) -> the plain modules, layer by layer."""
    convs = [f"conv{b}_{k}" for b, n, _ in VGG16_BLOCKS for k in range(1, n + 1)]
    heads = ["fc6", "fc7", "layer38"]
    pairs = []
    for seq, names, tower in ((plain.rgb, convs, "spatial"), (plain.flow, convs, "temporal"),
                              (plain.head_rgb, heads, "spatial"), (plain.head_flow, heads, "temporal")):
        mods = [m for m in seq if isinstance(m, (nn.Conv2d, nn.Linear))]
        assert len(mods) == len(names)
        pairs += [(m, (f"{n}f_{tower}", f"{n}b_{tower}")) for m, n in zip(mods, names)]
    with torch.no_grad():
        for m, (f, b) in pairs:
            m.weight.copy_(model.param(f).view_as(m.weight))
            m.bias.copy_(model.param(b).view(-1))
        plain.fuse.weight.copy_(model.param("conv3Df").view_as(plain.fuse.weight))
        plain.fuse.bias.copy_(model.param("conv3Db").view(-1))


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
    spec = build_fused_netspec(vgg16_stream_netspec(3, 101, seed=1, **kw), vgg16_stream_netspec(20, 101, seed=2, **kw),
                               FusionOptions(frames=args.frames))
    model = MatConvNetModel(spec, release_spec_values=True).eval()
    del spec
    sizes = [tuple(int(v) for v in size.lower().split("x")) for size in args.sizes.split(",")]
    plains = {}
    for kind in dict.fromkeys("linear" if hw == (224, 224) else "conv" for hw in sizes):
        plains[kind] = plain = PlainFusedVGG16(args.frames, linear=kind == "linear", widths=kw.get("widths"),
                                               fc=kw.get("fc_width", 4096)).eval()
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
