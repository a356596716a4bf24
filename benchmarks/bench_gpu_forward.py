"""Fused two-stream VGG-16 forward on the GPU, ours / plain PyTorch, in each precision
(``exact``, ``tf32``, ``bf16``), and what each precision costs in accuracy.

Speed: 8 clips x 5 frames at 224 x 224 (plain: torchvision-style towers with the
``nn.Linear`` classifier) and at 256 x 340 (plain: the classifier as convolutions,
giving score maps), ``nn.Conv3d`` + ``F.max_pool3d`` for the fusion, the SAME weights
(benchmarks/fused_nets.py). Both run under the same
:func:`matconv_port.precision.precision_scope` (ours through ``load_model``'s
``precision``); interleaved, median of >= 5 runs timed with CUDA events after a
synchronise. Ratio = plain time / our time (goal >= 0.95 in every mode).

Accuracy of each mode against ``exact`` (ours): top-1 agreement of the per-clip
scores (each head's prediction averaged over its score map) and the largest |score|
difference (absolute, and relative to the largest |exact score|), on the full-size
fused net (random weights, 4 batches of random input: 64 clip-heads per size) and on
a small demo-like fused net (two ``archs.demo`` streams, random weights, 256 random clips).

    python3 benchmarks/bench_gpu_forward.py --device cuda --report-md OUT/bench_gpu_forward.md [--small]

``--accuracy-only`` skips the timings (the CPU run of the accuracy table, where bf16 is
CPU autocast and tf32 equals exact); ``--clips N`` / ``--batches N`` / ``--sizes 224x224``
shrink the full-size part to what a CPU does in minutes:

    python3 benchmarks/bench_gpu_forward.py --device cpu --accuracy-only --clips 2 --batches 1 \
        --sizes 224x224 --report-md benchmarks/RESULTS_precision_cpu.md
"""
from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fused_nets import (FULL_WIDTHS, SMALL_WIDTHS, PlainFusedVGG16, build_fused_model,  # noqa: E402
                        copy_weights)
from gpu_bench_common import device_name, interleaved, parser, resolve, verdict, write_md  # noqa: E402

from matconv_port.precision import PRECISIONS, precision_scope  # noqa: E402

MODES = list(PRECISIONS)  # exact, tf32, bf16


def clip_scores(out, clips: int) -> torch.Tensor:
    """heads x clips x classes: each head's prediction averaged over space (and frames)."""
    heads = []
    for t in out:
        t = t.float().reshape(t.shape[0], t.shape[1], -1).mean(dim=2)
        heads.append(t.reshape(clips, -1, t.shape[1]).mean(dim=1))
    return torch.stack(heads)


def accuracy_rows(run, clips: int, batches: int = 1) -> dict[str, tuple[float, float, float, int]]:
    """mode -> (top-1 agreement with exact, max |diff|, max |diff| / max |exact|, compared);
    ``run(mode, batch)`` gives the outputs for input batch ``batch``."""
    ref = None
    rows = {}
    for mode in MODES:
        s = torch.cat([clip_scores(run(mode, i), clips).cpu() for i in range(batches)], dim=1)
        if ref is None:
            ref = s
        agree = float((s.argmax(-1) == ref.argmax(-1)).float().mean())
        diff = float((s - ref).abs().max())
        rows[mode] = (agree, diff, diff / max(float(ref.abs().max()), 1e-30), int(ref.shape[0] * ref.shape[1]))
    return rows


def main(argv=None) -> int:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--accuracy-only", action="store_true",
                    help="no timings: only what each precision costs in accuracy against exact")
    ap.add_argument("--clips", type=int, default=None, help="clips per input batch of the VGG-16 part (default 8)")
    ap.add_argument("--batches", type=int, default=None,
                    help="input batches compared for accuracy on the VGG-16 part (default 4)")
    ap.add_argument("--sizes", default=None, help="frame sizes of the VGG-16 part, from 224x224,256x340 (default both)")
    args = ap.parse_args(argv)
    dev = resolve(args.device)
    torch.manual_seed(0)
    if args.small:
        widths, fc, fc6, clips, frames = SMALL_WIDTHS, 32, 1, 2, 5
        sizes = [((32, 32), "linear"), ((32, 48), "conv")]
        iters = args.iters or 5
    else:
        widths, fc, fc6, clips, frames = FULL_WIDTHS, 4096, 7, 8, 5
        sizes = [((224, 224), "linear"), ((256, 340), "conv")]
        iters = args.iters or 10
    if args.sizes:
        known = {f"{h}x{w}": ((h, w), c) for (h, w), c in sizes}
        wanted = [x.strip() for x in args.sizes.split(",") if x.strip()]
        bad = [x for x in wanted if x not in known]
        if bad or not wanted:
            ap.error(f"--sizes {args.sizes!r}: choose from {','.join(known)}")
        sizes = [known[x] for x in wanted]
    clips = args.clips or clips
    acc_batches = args.batches or (1 if args.small else 4)
    classes = 101
    model = build_fused_model(frames, classes, widths=widths, fc_width=fc, fc6_size=fc6).to(dev).eval()
    plains = {}
    for cls in {c for _, c in sizes}:
        p = PlainFusedVGG16(frames, classes, widths=widths, fc_width=fc, fc6_size=fc6, classifier=cls)
        copy_weights(p, model)
        plains[cls] = p.to(dev).eval()

    speed_rows, acc_rows, parity = [], [], {}
    g = torch.Generator(device="cpu").manual_seed(0)
    for (h, w), cls in sizes:
        rgb = (torch.randn(clips * frames, 3, h, w, generator=g) * 50).to(dev)
        flow = (torch.randn(clips * frames, 20, h, w, generator=g) * 20).to(dev)
        plain = plains[cls]

        def ours_in(mode, batch=0):
            model.precision = mode
            if batch == 0:
                return model(rgb, flow, num_videos=clips)
            gb = torch.Generator(device="cpu").manual_seed(1000 + batch)  # further random inputs (accuracy)
            return model((torch.randn(rgb.shape, generator=gb) * 50).to(dev),
                         (torch.randn(flow.shape, generator=gb) * 20).to(dev), num_videos=clips)

        def plain_in(mode):
            with precision_scope(mode, dev.type):
                return plain(rgb, flow)

        with torch.inference_mode():
            for mode in [] if args.accuracy_only else MODES:
                t = interleaved({"ours": lambda: ours_in(mode), "plain": lambda: plain_in(mode)}, dev, iters)
                speed_rows.append((f"{h}x{w}", cls, mode, t["ours"], t["plain"], t["plain"] / t["ours"], t["_iters"]))
                print(f"{h}x{w} {mode}: ours {t['ours'] * 1e3:.1f} ms, plain {t['plain'] * 1e3:.1f} ms, "
                      f"ratio {t['plain'] / t['ours']:.3f}", flush=True)
            if not args.accuracy_only:
                a, b = ours_in("exact"), plain_in("exact")
                parity[f"{h}x{w}"] = max(float((x.reshape(y.shape) - y).abs().max() / y.abs().max().clamp_min(1e-30))
                                         for x, y in zip(a, b))
                del a, b
            for mode, r in accuracy_rows(ours_in, clips, acc_batches).items():
                acc_rows.append(("full-size fused VGG-16" if not args.small else "narrow fused VGG-16 (--small)",
                                 f"{h}x{w}", mode) + r)
        model.precision = "exact"

    # a small demo-like fused net: two archs.demo streams (the bundled demo's nets)
    from matconv_port.fusion import FusionOptions, build_fused_netspec
    from matconv_port.network import MatConvNetModel
    from matconv_port.train.archs import DEMO_IMAGE_SIZE, demo

    demo_net = MatConvNetModel(build_fused_netspec(demo(4, "rgb", seed=1), demo(4, "flow", seed=2),
                                                   FusionOptions(frames=frames))).to(dev).eval()
    dclips = 16 if args.small else 256
    dh, dw = DEMO_IMAGE_SIZE
    drgb = (torch.randn(dclips * frames, 3, dh, dw, generator=g) * 50).to(dev)
    dflow = (torch.randn(dclips * frames, 20, dh, dw, generator=g) * 20).to(dev)

    def demo_in(mode, batch=0):
        demo_net.precision = mode
        return demo_net(drgb, dflow, num_videos=dclips)

    with torch.inference_mode():
        for mode, r in accuracy_rows(demo_in, dclips).items():
            acc_rows.append(("demo-like fused net (archs.demo x2)", f"{dh}x{dw}", mode) + r)

    acc_lines = ["| net | frames | precision | top-1 agreement | max abs score diff | max diff / max abs score | clip-heads compared |",
                 "|---|---|---|---:|---:|---:|---:|"]
    for net, size, mode, agree, diff, rel, n in acc_rows:
        acc_lines.append(f"| {net} | {size} | {mode} | {agree * 100:.1f}% | {diff:.3g} | {rel:.2e} | {n} |")
    if args.accuracy_only:
        where = (f"measured on CPU (torch {torch.__version__}, {torch.get_num_threads()} threads); the GPU figures come from "
                 "benchmarks/gpu_check.sh" if dev.type == "cpu" else f"measured on {device_name(dev)}")
        text = "\n".join([
            "## What each precision costs in accuracy (ours, against exact; bench_gpu_forward.py --accuracy-only)", "",
            f"{where}. Per-clip scores (each head's prediction averaged over its score map); "
            f"{'narrow (--small)' if args.small else 'full-size'} fused VGG-16 with random weights, {acc_batches} batch(es) of {clips} random clips x {frames} frames; "
            f"demo-like fused net (two archs.demo streams, random weights), {dclips} random clips.", "",
            *acc_lines, ""] + (["On CPU the TF32 flags do nothing: tf32 equals exact. bf16 is CPU autocast "
                                "(torch.autocast('cpu', torch.bfloat16))."] if dev.type == "cpu" else []))
        write_md(args.report_md, text)
        for net, size, mode, agree, diff, rel, n in acc_rows:  # the table is in the report; a line per mode here
            if mode != "exact":
                print(f"{net} {size} {mode} vs exact: top-1 agreement {agree * 100:.1f}%, max abs score diff "
                      f"{diff:.3g}, ratio to max abs score {rel:.2e} ({n} clip-heads)")
        return 0
    lines = [f"## Fused two-stream VGG-16 forward: ours / plain PyTorch per precision (bench_gpu_forward.py)", "",
             f"Device {device_name(dev)}; {clips} clips x {frames} frames; "
             f"{'NARROW net (--small dry run)' if args.small else 'full-size VGG-16 towers, 101 classes'}; "
             f"median of {speed_rows[0][6]} interleaved runs after 2 warm-ups "
             f"({'CUDA events' if dev.type == 'cuda' else 'wall clock'}). "
             f"Ratio = plain time / our time (goal >= 0.95). Same weights; exact-mode outputs of ours vs plain "
             f"differ by at most " + ", ".join(f"{k}: {v:.1e}" for k, v in parity.items()) + " (max rel).", "",
             "| frames | plain classifier | precision | ours (ms) | plain (ms) | ours/plain | goal >= 0.95 |",
             "|---|---|---|---:|---:|---:|---|"]
    for size, cls, mode, to, tp, ratio, _ in speed_rows:
        lines.append(f"| {size} | {cls} | {mode} | {to * 1e3:.2f} | {tp * 1e3:.2f} | {ratio:.3f} | {verdict(ratio, 0.95)} |")
    ex = {r[0]: r[3] for r in speed_rows if r[2] == "exact"}
    lines += ["", "Speed-up of each precision over exact (ours): " + "; ".join(
        f"{r[0]} {r[2]} {ex[r[0]] / r[3]:.2f}x" for r in speed_rows if r[2] != "exact"), "",
              "### What each precision costs in accuracy (ours, against exact)", "", *acc_lines]
    if dev.type != "cuda":
        lines += ["", "(On CPU the TF32 flags do nothing: tf32 equals exact; bf16 is CPU autocast. "
                  "The narrow dry-run net's timings say nothing about the GPU: the goals are for the H200 run.)"]
    write_md(args.report_md, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
