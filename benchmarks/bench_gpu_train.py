"""Fused two-stream VGG-16 training step on the GPU: ours / plain PyTorch per precision,
and bf16 against exact.

One step = 8 videos x 5 frames of 224 x 224 (RGB + 20 flow channels), the fusion
recipe's backprop depth (``relu5_3_spatial``: the towers run without autograd, the
Conv3D fusion, 3D pools and both heads train), both heads' softmax losses summed,
then an SGD update (momentum 0.9, weight decay 5e-4).

Ours: the fused net built by ``matconv_port.fusion`` (benchmarks/fused_nets.py), the
training loop's ``forward_backward`` (forward under ``precision_scope``, backward
under the same TF32 policy) and ``MatConvNetSGD``. Plain: the same weights in
torchvision-style modules (``nn.Linear`` classifier, ``nn.Conv3d``), towers under
``no_grad``, ``nn.CrossEntropyLoss(reduction="sum")`` per head, ``torch.optim.SGD``,
under the same precision scope. Interleaved, median of >= 5 steps (CUDA events).
Goals: ours / plain >= 0.95 (plain time / our time) and bf16 >= 2x exact.

    python3 benchmarks/bench_gpu_train.py --device cuda --report-md OUT/bench_gpu_train.md [--small]
"""
from __future__ import annotations

import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fused_nets import FULL_WIDTHS, SMALL_WIDTHS, PlainFusedVGG16, build_fused_model, copy_weights  # noqa: E402
from gpu_bench_common import device_name, interleaved, parser, resolve, verdict, write_md  # noqa: E402

from matconv_port.precision import PRECISIONS, precision_scope  # noqa: E402

DEPTH = "relu5_3_spatial"


def main(argv=None) -> int:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    dev = resolve(args.device)
    from matconv_port.train.loop import forward_backward, objective_layers, trainable_param_names
    from matconv_port.train.optim import MatConvNetSGD, matconvnet_param_groups

    torch.manual_seed(0)
    if args.small:
        widths, fc, fc6, videos, size, iters = SMALL_WIDTHS, 32, 1, 2, 32, args.iters or 5
    else:
        widths, fc, fc6, videos, size, iters = FULL_WIDTHS, 4096, 7, 8, 224, args.iters or 10
    frames, classes = 5, 101
    model = build_fused_model(frames, classes, widths=widths, fc_width=fc, fc6_size=fc6).to(dev).train()
    plain = PlainFusedVGG16(frames, classes, widths=widths, fc_width=fc, fc6_size=fc6, classifier="linear",
                            freeze_towers=True)
    copy_weights(plain, model)
    plain = plain.to(dev).train()

    trainable = trainable_param_names(model, DEPTH)
    for name, p in model.named_matconvnet_params():
        p.requires_grad_(name in trainable)
    frozen = [model.layer_specs[i].name for i in model.execution_order].index(DEPTH)
    objectives = objective_layers(model)
    opt = MatConvNetSGD(matconvnet_param_groups(model, trainable), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    popt = torch.optim.SGD([p for p in plain.parameters() if p.requires_grad], lr=1e-3, momentum=0.9,
                           weight_decay=5e-4)
    ce = nn.CrossEntropyLoss(reduction="sum")
    n_ours = sum(p.numel() for n, p in model.named_matconvnet_params() if n in trainable)
    n_plain = sum(p.numel() for p in plain.parameters() if p.requires_grad)

    g = torch.Generator(device="cpu").manual_seed(0)
    rgb = (torch.randn(videos * frames, 3, size, size, generator=g) * 50).to(dev)
    flow = (torch.randn(videos * frames, 20, size, size, generator=g) * 20).to(dev)
    label = torch.randint(1, classes + 1, (videos,), generator=g).float().to(dev)
    inputs = {"input": rgb, "input_flow": flow, "label": label}

    def step_ours(mode):
        forward_backward(model, inputs, videos, frozen, objectives, precision=mode)
        opt.step(batch_size=videos)
        for grp in opt.param_groups:
            for p in grp["params"]:
                p.grad = None

    def step_plain(mode):
        p = PRECISIONS[mode]
        with precision_scope(p, dev.type):
            s, t = plain(rgb, flow)
        y = label.long() - 1
        loss = ce(s.float(), y) + ce(t.float(), y)
        with precision_scope("tf32" if p.tf32 else "exact", dev.type):
            loss.backward()
        popt.step()
        popt.zero_grad(set_to_none=True)

    rows = []
    for mode in PRECISIONS:
        t = interleaved({"ours": lambda: step_ours(mode), "plain": lambda: step_plain(mode)}, dev, iters)
        rows.append((mode, t["ours"], t["plain"], t["plain"] / t["ours"], t["_iters"]))
        print(f"train {mode}: ours {t['ours'] * 1e3:.1f} ms, plain {t['plain'] * 1e3:.1f} ms, "
              f"ratio {t['plain'] / t['ours']:.3f}", flush=True)
    by = {r[0]: r for r in rows}
    bf_ours, bf_plain = by["exact"][1] / by["bf16"][1], by["exact"][2] / by["bf16"][2]
    lines = ["## Fused two-stream VGG-16 training step: ours / plain PyTorch (bench_gpu_train.py)", "",
             f"Device {device_name(dev)}; {videos} videos x {frames} frames of {size}x{size}; backprop depth {DEPTH} "
             f"({n_ours:,} trained params ours, {n_plain:,} plain); "
             f"{'NARROW net (--small dry run); ' if args.small else 'full-size VGG-16 towers; '}"
             f"median of {rows[0][4]} interleaved steps after 2 warm-ups "
             f"({'CUDA events' if dev.type == 'cuda' else 'wall clock'}). Ratio = plain time / our time.", "",
             "| precision | ours (ms/step) | plain (ms/step) | ours/plain | goal >= 0.95 | ours videos/s |",
             "|---|---:|---:|---:|---|---:|"]
    for mode, to, tp, ratio, _ in rows:
        lines.append(f"| {mode} | {to * 1e3:.1f} | {tp * 1e3:.1f} | {ratio:.3f} | {verdict(ratio, 0.95)} | "
                     f"{videos / to:.1f} |")
    lines += ["", f"bf16 vs exact (ours): {bf_ours:.2f}x faster, goal >= 2x: {verdict(bf_ours, 2.0)} "
                  f"(plain: {bf_plain:.2f}x)."]
    if dev.type != "cuda":
        lines += ["", "(On CPU the TF32 flags do nothing and the narrow dry-run net's timings say nothing about "
                  "the GPU: the goals are for the H200 run.)"]
    write_md(args.report_md, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
