"""Training-step throughput of the full-size fused VGG-16 (the paper's net) vs a plain
PyTorch training step of the same architecture.

Ours: two VGG-16 streams (``matconv_port.train.archs.vgg16``, 101 classes) fused by
``matconv_port.fusion.build_fused_netspec`` (Concat + Conv3D 3x3x3x1024x512 + ReLU +
Pooling3D in both towers, two heads), run by ``MatConvNetModel`` with the training
loop's ``forward_backward`` (backprop depth ``relu5_3_spatial``, both losses) and a
``MatConvNetSGD`` step.

Plain: ``nn.Sequential`` VGG-16 towers (torchvision's ``vgg16().features`` layout up
to relu5_3, written out because torchvision is not installed here), ``nn.Conv3d``,
``nn.MaxPool3d``, torchvision's classifier (``nn.Linear`` fc6/fc7/fc8 on the
flattened 7 x 7 map at 224; 1x1-conv heads only at other sizes, for score maps), the towers run under ``no_grad``
(same backprop depth), summed cross-entropy of both heads, ``torch.optim.SGD``
(momentum 0.9, weight decay 5e-4).

Both get the same inputs (``V`` videos x 5 frames of 224 x 224, RGB + 20 flow
channels); steps alternate between the two, and the median step time of each gives
clips/s (median of at least 5 steps each). Usage::

    python benchmarks/bench_train_step.py --device cpu --videos 1 --steps 5
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn


NARROW = {"widths": [16, 32, 64, 128, 128], "fc_width": 1024}


def plain_tower(cin: int, widths: list[int] | None = None) -> nn.Sequential:
    w = widths or [64, 128, 256, 512, 512]
    cfg = [w[0], w[0], "M", w[1], w[1], "M", w[2], w[2], w[2], "M", w[3], w[3], w[3], "M", w[4], w[4], w[4]]
    layers: list[nn.Module] = []
    c = cin
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
            c = v
    return nn.Sequential(*layers)


def plain_head(classes: int, dropout: float, linear: bool = True, c: int = 512, fc: int = 4096) -> nn.Sequential:
    """torchvision's VGG classifier (Linear layers on the flattened 7 x 7 map: the fastest
    plain form at 224); ``linear=False``: the same as convolutions, for score maps."""
    if linear:
        return nn.Sequential(nn.Flatten(1), nn.Linear(c * 7 * 7, fc), nn.ReLU(inplace=True), nn.Dropout(dropout),
                             nn.Linear(fc, fc), nn.ReLU(inplace=True), nn.Dropout(dropout),
                             nn.Linear(fc, classes))
    return nn.Sequential(nn.Conv2d(c, fc, 7), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Conv2d(fc, fc, 1), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Conv2d(fc, classes, 1))


class PlainFused(nn.Module):
    def __init__(self, classes: int = 101, frames: int = 5, dropout: float = 0.85, linear: bool = True,
                 widths: list[int] | None = None, fc: int = 4096):
        super().__init__()
        self.frames = frames
        c = (widths or [512])[-1]
        self.rgb, self.flow = plain_tower(3, widths), plain_tower(20, widths)
        self.conv3d = nn.Conv3d(2 * c, c, 3, padding=1)
        self.pool = nn.MaxPool3d((frames, 2, 2), stride=(2, 2, 2))
        self.head_s, self.head_t = (plain_head(classes, dropout, linear, c, fc) for _ in range(2))

    def _clips(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.reshape(n // self.frames, self.frames, c, h, w).transpose(1, 2)

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor):
        with torch.no_grad():
            a, b = self.rgb(rgb), self.flow(flow)
        fused = torch.relu(self.conv3d(self._clips(torch.cat([a, b], 1))))
        s = self.pool(fused).squeeze(2)
        t = self.pool(self._clips(b)).squeeze(2)
        return self.head_s(s).flatten(1), self.head_t(t).flatten(1)


def build_ours(classes: int, frames: int, device: torch.device, narrow: bool = False):
    from matconv_port.fusion import FusionOptions, build_fused_netspec
    from matconv_port.network import MatConvNetModel
    from matconv_port.train.archs import vgg16
    from matconv_port.train.loop import objective_layers, trainable_param_names
    from matconv_port.train.optim import MatConvNetSGD, matconvnet_param_groups

    if narrow:
        streams = [vgg16(classes, kind, seed=s, layout="paper", init="he32", **NARROW)
                   for kind, s in (("rgb", 1), ("flow", 2))]
    else:
        streams = [vgg16(classes, kind, seed=s) for kind, s in (("rgb", 1), ("flow", 2))]
    spec = build_fused_netspec(*streams, FusionOptions(frames=frames, dropout_rate=0.85))
    model = MatConvNetModel(spec).to(device).train()
    depth = "relu5_3_spatial"
    trainable = trainable_param_names(model, depth)
    for name, p in model.named_matconvnet_params():
        p.requires_grad_(name in trainable)
    names = [model.layer_specs[i].name for i in model.execution_order]
    opt = MatConvNetSGD(matconvnet_param_groups(model, trainable), lr=1e-3)
    return model, opt, names.index(depth), objective_layers(model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--videos", type=int, default=1)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--classes", type=int, default=101)
    ap.add_argument("--narrow", action="store_true",
                    help="quarter-width VGG-16 (16..128 channels, fc 1024): a quick run, not the benchmark")
    args = ap.parse_args()
    from matconv_port.train.loop import forward_backward

    device = torch.device(args.device)
    torch.manual_seed(0)
    V, T, S = args.videos, args.frames, args.size
    rgb = torch.randn(V * T, 3, S, S, device=device) * 50
    flow = torch.randn(V * T, 20, S, S, device=device) * 20
    label = torch.randint(1, args.classes + 1, (V,), device=device).float()

    ours, opt, frozen, objectives = build_ours(args.classes, T, device, args.narrow)
    narrow = NARROW if args.narrow else {"widths": None, "fc_width": 4096}
    plain = PlainFused(args.classes, T, linear=S == 224, widths=narrow["widths"], fc=narrow["fc_width"]).to(device).train()
    for p in list(plain.rgb.parameters()) + list(plain.flow.parameters()):
        p.requires_grad_(False)
    popt = torch.optim.SGD([p for p in plain.parameters() if p.requires_grad], lr=1e-3, momentum=0.9, weight_decay=5e-4)
    ce = nn.CrossEntropyLoss(reduction="sum")

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step_ours() -> float:
        sync()
        t0 = time.perf_counter()
        forward_backward(ours, {"input": rgb, "input_flow": flow, "label": label}, V, frozen, objectives)
        opt.step(batch_size=V)
        for g in opt.param_groups:
            for p in g["params"]:
                p.grad = None
        sync()
        return time.perf_counter() - t0

    def step_plain() -> float:
        sync()
        t0 = time.perf_counter()
        s, t = plain(rgb, flow)
        y = label.long() - 1
        loss = ce(s, y) + ce(t, y)
        loss.backward()
        popt.step()
        popt.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - t0

    for _ in range(args.warmup):
        step_ours()
        step_plain()
    t_ours, t_plain = [], []
    for i in range(args.steps):  # interleaved, alternating who goes first
        for fn, ts in ([(step_ours, t_ours), (step_plain, t_plain)][::1 if i % 2 == 0 else -1]):
            ts.append(fn())
    mo, mp = statistics.median(t_ours), statistics.median(t_plain)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; {V} video(s) x {T} frames of {S}x{S}; {args.steps} timed steps after {args.warmup} warm-up")
    print(f"ours  (MatConvNetModel + MatConvNetSGD): median {mo:.3f} s/step = {V / mo:.3f} clips/s  (steps {[round(t, 3) for t in t_ours]})")
    print(f"plain (nn.Sequential + nn.Conv3d + SGD): median {mp:.3f} s/step = {V / mp:.3f} clips/s  (steps {[round(t, 3) for t in t_plain]})")
    print(f"ratio ours/plain throughput (medians): {mp / mo:.3f}")


if __name__ == "__main__":
    main()
