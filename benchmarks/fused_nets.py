"""The paper's fused two-stream VGG-16 for the benchmarks: ours (built by
``matconv_port.fusion`` and run by ``MatConvNetModel``) and what a PyTorch user would
write (torchvision-style ``nn.Sequential`` towers, ``torch.cat``, ``nn.Conv3d`` + ReLU,
``F.max_pool3d``, and per stream either torchvision's ``nn.Linear`` classifier, right
for 224 x 224 frames, or the same classifier as convolutions, giving the score maps
whole 256 x 340 frames need), with the SAME weights (:func:`copy_weights`).

Widths are parameters so that ``--small`` dry runs use a narrow net of the same
structure. Used by bench_fusion_forward.py (CPU), bench_gpu_forward.py and
bench_gpu_train.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from matconv_port.train.archs import VGG16_BLOCKS

FULL_WIDTHS = tuple(w for _, _, w in VGG16_BLOCKS)
#: a narrow net of the same structure for CPU dry runs (--small)
SMALL_WIDTHS = (8, 8, 16, 16, 16)


def _tower(in_ch: int, widths=FULL_WIDTHS) -> nn.Sequential:
    """torchvision's ``vgg16().features`` up to relu5_3 (pool5 is the fusion's 3D pool)."""
    mods: list[nn.Module] = []
    c = in_ch
    for (b, n, _), width in zip(VGG16_BLOCKS, widths):
        for _ in range(n):
            mods += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)]
            c = width
        if b < 5:
            mods.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*mods)


def _head(classes: int, cin: int = 512, fc_width: int = 4096, fc6_size: int = 7, dropout: float = 0.85,
          classifier: str = "conv") -> nn.Sequential:
    """fc6 / fc7 / fc8: ``conv`` (score maps) or torchvision's ``linear`` classifier."""
    if classifier == "linear":
        return nn.Sequential(nn.Flatten(1), nn.Linear(cin * fc6_size * fc6_size, fc_width), nn.ReLU(inplace=True),
                             nn.Dropout(dropout), nn.Linear(fc_width, fc_width), nn.ReLU(inplace=True),
                             nn.Dropout(dropout), nn.Linear(fc_width, classes))
    return nn.Sequential(nn.Conv2d(cin, fc_width, fc6_size), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Conv2d(fc_width, fc_width, 1), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Conv2d(fc_width, classes, 1))


class PlainFusedVGG16(nn.Module):
    """What a PyTorch user would write for the paper's fused net (fusion after relu5_3:
    Conv3D 3x3x3 over the concatenated towers + ReLU, 3D max pooling over the clip's
    frames in both streams, two heads). ``freeze_towers``: the towers run without
    autograd (the fusion recipe's backprop depth ``relu5_3_spatial``)."""

    def __init__(self, frames: int, classes: int = 101, *, widths=FULL_WIDTHS, fc_width: int = 4096,
                 fc6_size: int = 7, classifier: str = "conv", dropout: float = 0.85, freeze_towers: bool = False):
        super().__init__()
        self.frames, self.freeze_towers = frames, freeze_towers
        c5 = widths[-1]
        self.rgb, self.flow = _tower(3, widths), _tower(20, widths)
        self.fuse = nn.Conv3d(2 * c5, c5, 3, padding=1)
        self.head_rgb = _head(classes, c5, fc_width, fc6_size, dropout, classifier)
        self.head_flow = _head(classes, c5, fc_width, fc6_size, dropout, classifier)
        if freeze_towers:
            for p in list(self.rgb.parameters()) + list(self.flow.parameters()):
                p.requires_grad_(False)

    def _pool3d(self, x: torch.Tensor) -> torch.Tensor:
        """Pooling3D [2 2 T] stride [2 2 2] over each clip's T frames -> frames x C x H x W."""
        n, c, h, w = x.shape
        y = F.max_pool3d(x.view(n // self.frames, self.frames, c, h, w).transpose(1, 2),
                         (self.frames, 2, 2), (2, 2, 2))
        return y.transpose(1, 2).reshape(-1, c, y.shape[3], y.shape[4])

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor):
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_towers):
            a, b = self.rgb(rgb), self.flow(flow)
        n, c, h, w = a.shape
        v = torch.cat([a, b], 1).view(n // self.frames, self.frames, 2 * c, h, w).transpose(1, 2)
        fused = torch.relu(self.fuse(v)).transpose(1, 2).reshape(n, c, h, w)
        return self.head_rgb(self._pool3d(fused)), self.head_flow(self._pool3d(b))


def build_fused_model(frames: int = 5, classes: int = 101, *, widths=FULL_WIDTHS, fc_width: int = 4096,
                      fc6_size: int = 7, dropout: float = 0.85, seed: int = 1):
    """Our fused net (random He-scaled weights): two paper-layout ``archs.vgg16`` streams
    fused by ``build_fused_netspec`` (cnn_ucf101_fusion.m's surgery)."""
    from matconv_port.fusion import FusionOptions, build_fused_netspec
    from matconv_port.train.archs import vgg16
    from matconv_port.network import MatConvNetModel

    kw = dict(widths=tuple(widths), fc_width=fc_width, fc6_size=fc6_size, dropout=dropout, init="he32", layout="paper")
    spec = build_fused_netspec(vgg16(classes, "rgb", seed=seed, **kw),
                               vgg16(classes, "flow", seed=seed + 1, **kw),
                               FusionOptions(frames=frames, dropout_rate=dropout))
    return MatConvNetModel(spec, release_spec_values=True)


def copy_weights(plain: PlainFusedVGG16, model) -> None:
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
            m.weight.copy_(model.param(f).reshape(m.weight.shape))
            m.bias.copy_(model.param(b).reshape(-1))
        plain.fuse.weight.copy_(model.param("conv3Df").view_as(plain.fuse.weight))
        plain.fuse.bias.copy_(model.param("conv3Db").view(-1))
