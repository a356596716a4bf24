"""A short human-readable summary of a fused two-stream net (for ``inspect``), and
parameter counting by tower."""
from __future__ import annotations

from typing import Any

import numpy as np

from matconv_port.fusion.surgery import objective_losses
from matconv_port.netspec import LayerSpec, NetSpec

SPATIAL, TEMPORAL = "_spatial", "_temporal"


def _layers_and_shapes(model_or_spec: Any) -> tuple[list[LayerSpec], dict[str, tuple], list[str], dict]:
    """(layers, MatConvNet param shapes, var names, meta) of a MatConvNetModel or NetSpec."""
    if isinstance(model_or_spec, NetSpec):
        spec = model_or_spec
        shapes = {n: tuple(np.shape(p.value)) for n, p in spec.params.items() if p.value is not None}
        return list(spec.layers), shapes, spec.all_var_names(), spec.meta
    return list(model_or_spec.layer_specs), dict(model_or_spec.param_shapes), list(model_or_spec.var_names), \
        model_or_spec.meta


def _tower_of(name: str) -> str:
    if name.endswith(SPATIAL):
        return "spatial"
    if name.endswith(TEMPORAL):
        return "temporal"
    return "fusion"


def count_params(model_or_spec: Any) -> dict[str, int]:
    """Parameter counts (number of values): ``total``, ``spatial`` (params named
    ``*_spatial``), ``temporal`` (``*_temporal``) and ``fusion`` (the others: Conv3D,
    2-D fusion conv...). Shared params count once."""
    layers, shapes, _, _ = _layers_and_shapes(model_or_spec)
    counts = {"total": 0, "spatial": 0, "temporal": 0, "fusion": 0}
    seen: set[str] = set()
    for layer in layers:
        for p in layer.params:
            if p in seen or p not in shapes:
                continue
            seen.add(p)
            n = int(np.prod(shapes[p])) if len(shapes[p]) else 1
            counts["total"] += n
            counts[_tower_of(p)] += n
    return counts


def _fmt(n: int) -> str:
    return f"{n:,} ({n / 1e6:.2f}M)"


def describe_fusion(model_or_spec: Any) -> list[str]:
    """Lines describing the towers, the fusion point(s), the heads and the parameter
    counts of a fused net (a :class:`~matconv_port.network.MatConvNetModel` or a
    NetSpec). For a net without ``_spatial``/``_temporal`` towers, one line saying so."""
    layers, shapes, var_names, meta = _layers_and_shapes(model_or_spec)
    towers = {t: [l for l in layers if _tower_of(l.name) == t] for t in ("spatial", "temporal")}
    if not towers["spatial"] and not towers["temporal"]:
        return ["not a two-stream fused net (no *_spatial / *_temporal layers)"]
    producers = {o: l for l in layers for o in l.outputs}
    lines = []
    for t, tl in towers.items():
        if not tl:
            lines.append(f"{t} tower: absent")
            continue
        inputs = sorted({v for l in tl for v in l.inputs if v not in producers and v != "label"})
        lines.append(f"{t} tower: {len(tl)} layers ({tl[0].name} .. {tl[-1].name}), input {', '.join(inputs) or '-'}")
    merges = [l for l in layers if l.type in ("dagnn.Concat", "dagnn.Sum")
              and {_tower_of(producers[v].name) for v in l.inputs if v in producers} >= {"spatial", "temporal"}]
    for m in merges:
        srcs = ", ".join(f"{producers[v].name}" for v in m.inputs if v in producers)
        lines.append(f"fusion point: {m.name} ({m.type.split('.')[-1]}) of {srcs}")
    for l in layers:
        if _tower_of(l.name) == "fusion" and l.params or l.type in ("dagnn.Conv3D", "dagnn.Pooling3D"):
            extra = ""
            if l.params and l.params[0] in shapes:
                extra = f", filter {'x'.join(str(s) for s in shapes[l.params[0]])}"
            if l.type == "dagnn.Pooling3D":
                ps = l.block.get("poolSize")
                extra = f", pool {'x'.join(str(int(x)) for x in np.ravel(ps))}" if ps is not None else ""
            lines.append(f"  {l.name} ({l.type}){extra}: {', '.join(l.inputs)} -> {', '.join(l.outputs)}")
    heads = objective_losses(layers)
    preds = []
    for h in heads:
        if h.inputs and h.inputs[0] not in preds:
            preds.append(h.inputs[0])
    if preds:
        names = [producers[p].name if p in producers else p for p in preds]
        lines.append(f"heads: {', '.join(f'{n} -> {p}' for n, p in zip(names, preds))} (test time: scores averaged)")
    frames = None
    if isinstance(meta, dict) and meta.get("curNumFrames") is not None:
        frames = int(np.ravel(np.asarray(meta["curNumFrames"], dtype=float))[0])
    if frames:
        lines.append(f"frames per clip: {frames}")
    c = count_params(model_or_spec)
    lines.append(f"parameters: total {_fmt(c['total'])}; spatial {_fmt(c['spatial'])}; "
                 f"temporal {_fmt(c['temporal'])}; fusion layers {_fmt(c['fusion'])}")
    return lines


# ---------------------------------------------------------------------------- variants
#: (label, FusionOptions keyword arguments) of the variants compared by :func:`param_table`
PARAM_VARIANTS: list[tuple[str, dict]] = [
    ("late fusion (prediction layer: both full towers, scores averaged)", {}),
    ("sum fusion at relu5_3, fused-from tower cut", dict(fusion_type="sum", conv3d=False, remove_fuse_from=True)),
    ("conv fusion at relu5_3 (1x1 2-D conv), fused-from tower cut", dict(conv3d=False, remove_fuse_from=True)),
    ("conv3D fusion at relu5_3 + 3D pooling, fused-from tower cut", dict(remove_fuse_from=True)),
    ("conv3D fusion at relu5_3 + 3D pooling, both towers kept (the paper's final net)", {}),
]


def param_table(num_classes: int = 101, frames: int = 5) -> list[tuple[str, dict[str, int]]]:
    """Parameter counts of the fusion variants built from two full-size VGG-16 streams
    (RGB 3 channels, flow 20), shapes only (no weights materialised except the fusion
    filters). The first row is late fusion: the two stream nets themselves."""
    from matconv_port.fusion.build import FusionOptions, build_fused_netspec
    from matconv_port.train.archs import vgg16

    a = vgg16(num_classes, "rgb", init="shape", layout="paper")
    b = vgg16(num_classes, "flow", init="shape", layout="paper")
    rows = []
    for label, kw in PARAM_VARIANTS:
        if not kw and label.startswith("late"):
            ca, cb = count_params(a), count_params(b)
            rows.append((label, {"total": ca["total"] + cb["total"], "spatial": ca["total"], "temporal": cb["total"],
                                 "fusion": 0}))
            continue
        spec = build_fused_netspec(a, b, FusionOptions(frames=frames, **kw))
        rows.append((label, count_params(spec)))
    return rows
