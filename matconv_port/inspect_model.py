"""A printable summary of a network, like MatConvNet's ``net.print()``."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from matconv_port.errors import MatConvPortError
from matconv_port.shapecheck import default_input_shapes, infer_var_shapes, mcn_size


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape) if len(shape) else "[]"


def _block_summary(layer) -> str:
    keys = ("size", "poolSize", "pad", "stride", "method", "leak", "rate", "param", "dim", "loss", "upsample", "crop", "dilate",
            "subdivisions", "transform", "flatten", "Ho", "Wo", "p", "aggregate")
    parts = []
    for k in keys:
        if k in layer.block and layer.block[k] is not None and not (isinstance(layer.block[k], (list, np.ndarray)) and np.size(layer.block[k]) == 0):
            v = layer.block[k]
            if isinstance(v, (list, tuple, np.ndarray)):
                arr = np.asarray(v, dtype=object).ravel()
                v = "[" + " ".join(f"{float(x):g}" if isinstance(x, (int, float, np.number)) else str(x) for x in arr) + "]"
            elif isinstance(v, float):
                v = f"{v:g}"
            parts.append(f"{k}={v}")
    return " ".join(parts)


def matconvnet_mem(num_bytes: float) -> str:
    """A byte count the way MatConvNet's ``DagNN.print`` writes it (its ``pmem``:
    B, KB, MB, GB with powers of 1024, no decimals)."""
    for unit, scale in (("B", 1), ("KB", 1024), ("MB", 1024 ** 2)):
        if num_bytes < 1024 * scale:
            return f"{num_bytes / scale:.0f}{unit}"
    return f"{num_bytes / 1024 ** 3:.0f}GB"


def describe(model, input_size: Sequence[int] | None = None) -> list[str]:
    """Lines describing ``model``: one row per layer and its meta. Rows follow the file's layer
    order (``net.layers``, as MatConvNet's ``DagNN.print`` lists them: ``#`` is the layer's index
    there), not the execution order."""
    shapes: dict[str, tuple] = {}
    size_note = ""
    try:
        input_shapes = default_input_shapes(model, input_size)
        shapes = infer_var_shapes(model, input_shapes, num_videos=1)
        size_note = ", ".join(f"{v} {mcn_size(s)}" for v, s in input_shapes.items())
    except MatConvPortError as exc:
        size_note = f"(sizes unavailable: {exc})"
    rows = [("#", "layer", "type", "inputs -> outputs", "params", "output size", "block")]
    for k, l in enumerate(model.layer_specs, 1):
        params = ", ".join(f"{p} {_shape_text(model.param_shapes[p])}" for p in l.params)
        out = ", ".join(mcn_size(shapes[o]) for o in l.outputs if o in shapes) or "-"
        rows.append((str(k), l.name, l.type.replace("dagnn.", ""), f"{', '.join(l.inputs)} -> {', '.join(l.outputs)}",
                     params or "-", out, _block_summary(l)))
    widths = [min(max(len(r[i]) for r in rows), 60) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "-" * min(sum(widths) + 2 * len(widths), 160))
    n_weights = sum(p.numel() for p in model.params.values())
    lines += ["",
              f"layers: {len(model.layer_specs)}   params: {len(model.param_keys)} ({n_weights:,} weights, "
              f"{n_weights * model.dtype.itemsize / 2**20:.1f} MiB as {str(model.dtype).replace('torch.', '')})",
              f"inputs: {', '.join(model.input_vars) or '-'}   labels: {', '.join(model.label_vars) or '-'}   "
              f"predictions: {', '.join(model.prediction_vars) or '-'}",
              f"input size used: {size_note or '-'}"]
    if shapes:
        # net.print()'s memory table: 4 bytes per value of every param and var (whatever the dtype)
        param_mem = 4 * sum(int(np.prod(s)) for s in model.param_shapes.values())
        var_mem = 4 * sum(int(np.prod(s)) for s in shapes.values())
        lines.append(f"memory (as net.print() counts it): params {matconvnet_mem(param_mem)}, "
                     f"vars {matconvnet_mem(var_mem)}, total {matconvnet_mem(param_mem + var_mem)}")
    if model.frames_per_clip:
        lines.append(f"frames per clip: {model.frames_per_clip}")
    lines += describe_meta(model.meta)
    return lines


def describe_meta(meta: dict) -> list[str]:
    lines = ["meta:"]
    if not meta:
        return lines + ["  (empty)"]
    classes = meta.get("classes") if isinstance(meta, dict) else None
    if isinstance(classes, dict):
        names = classes.get("name")
        names = list(np.asarray(names, dtype=object).ravel()) if names is not None and not isinstance(names, str) else ([names] if names else [])
        shown = ", ".join(str(n) for n in names[:8]) + (" ..." if len(names) > 8 else "")
        lines.append(f"  classes: {len(names)} ({shown})")
    norm = meta.get("normalization")
    if isinstance(norm, dict):
        for key in ("averageImage", "imageSize", "border", "interpolation", "keepAspect"):
            if key in norm:
                v = norm[key]
                if isinstance(v, np.ndarray) and v.size > 6:
                    lines.append(f"  normalization.{key}: {_shape_text(v.shape)} array (mean {float(np.mean(v)):.4g})")
                else:
                    lines.append(f"  normalization.{key}: {np.asarray(v).ravel().tolist() if not isinstance(v, str) else v}")
    others = [k for k in meta if k not in ("classes", "normalization")]
    if others:
        lines.append(f"  other fields: {', '.join(others)}")
    return lines
