"""Inputs and PyTorch outputs of a model, saved for ``fixtures/check_export_in_matconvnet.m``.

The file follows the conventions of the MatConvNet reference fixtures: every input
var (``input``, ``input_flow``, ``x0``...) as ``H x W x C x N`` single with
``N = videos x frames`` (frames fastest), ``label`` (1-based classes, one per video),
``curBatchSize`` (videos), ``nFrames`` (frames per video) and ``outputs.<var>`` =
every var PyTorch computed (``H x W x C x N``). The MATLAB script loads the exported
net with ``dagnn.DagNN.loadobj``, evaluates it on these inputs and compares.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from matconv_port.export.onnx_export import onnx_input_shapes
from matconv_port.layout import to_matconvnet_layout

__all__ = ["check_data", "write_check_data"]


def check_data(model, *, videos: int = 2, frames: int | None = None, size=None, lrn_mode: str = "fast",
               seed: int = 0, scale: float = 1.0) -> dict[str, Any]:
    """Random inputs (seeded normal x ``scale``) and the model's outputs on them.

    ``lrn_mode="fast"`` computes LRN as MatConvNet's CPU code does (what MatConvNet
    under MATLAB/Octave on a CPU will compute); ``"exact"`` as its GPU code."""
    frames = int(frames or model.frames_per_clip or 1)
    shapes = onnx_input_shapes(model, model.input_vars, size)
    gen = torch.Generator().manual_seed(seed)
    n = videos * frames
    inputs = {v: scale * torch.randn((n,) + shapes[v], generator=gen, dtype=torch.float32) for v in model.input_vars}
    old_mode = model.lrn_mode
    model.lrn_mode = lrn_mode
    try:
        with torch.no_grad():
            first = model.forward_vars(dict(inputs), num_videos=videos)
            labels = {}
            if model.label_vars:
                preds = [first[v] for v in model.prediction_vars if v in first]
                classes = int(preds[0].shape[1]) if preds else 1
                label = torch.randint(1, classes + 1, (videos,), generator=gen).to(torch.float32)
                labels = {v: label for v in model.label_vars}
            values = model.forward_vars({**inputs, **labels}, num_videos=videos) if labels else first
    finally:
        model.lrn_mode = old_mode
    out: dict[str, Any] = {}
    for v, x in inputs.items():
        out[v] = to_matconvnet_layout(x).astype(np.float32)
    for v, lab in labels.items():
        out[v] = lab.numpy().astype(np.float64).reshape(1, -1)
    out["curBatchSize"] = np.array([[float(videos)]])
    out["nFrames"] = np.array([[float(frames)]])
    outputs = {}
    for name, t in values.items():
        if name in labels or not name.isidentifier() or len(name) > 63:  # MATLAB field names
            continue
        arr = t.detach().cpu()
        outputs[name] = to_matconvnet_layout(arr).astype(np.float32) if arr.dim() == 4 else arr.numpy()
    out["outputs"] = outputs
    return out


def write_check_data(model, path: str, **kwargs) -> None:
    """:func:`check_data` written to ``path`` (MAT -v7, atomic)."""
    from matconv_port.converters.matfile import write_mat

    write_mat(path, check_data(model, **kwargs), version="7")
