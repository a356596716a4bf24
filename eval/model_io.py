"""What the evaluation needs to know about a loaded model (an adapter over the
``load_model`` API): which input var takes RGB and which flow, per-channel means,
input size, class names, and the vars holding raw class scores.

Raw scores: ``model.prediction_vars`` are the inputs of the loss layers (the
``prediction`` layers' outputs). A deploy net without loss layers may end in a
SoftMax; its input is used instead, so scores are always taken before the softmax,
as the original ``cnn_train_dag`` takes the outputs of the layers whose filters
have ``nClasses`` outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from matconv_port.data.average_image import average_image, mean_hw, mean_image
from matconv_port.errors import ModelFormatError
from matconv_port.eval.batches import Normalization

__all__ = ["ModelStreams", "describe_model", "score_vars"]


@dataclass(frozen=True)
class ModelStreams:
    """``kind`` ``fused`` / ``rgb`` / ``flow``; the input var names (or None);
    normalization; class names from the model's meta (may be empty); raw-score vars."""

    kind: str
    rgb_var: str | None
    flow_var: str | None
    norm: Normalization
    classes: tuple[str, ...]
    score_vars: tuple[str, ...]
    frames_per_clip: int | None


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def score_vars(model: Any) -> list[str]:
    """Vars holding raw class scores (before any softmax)."""
    producers = {}
    for spec in getattr(model, "layer_specs", []):
        for o in spec.outputs:
            producers[o] = spec
    out = []
    for v in model.prediction_vars:
        spec = producers.get(v)
        if spec is not None and "softmax" in str(spec.type).lower() and "loss" not in str(spec.type).lower() and spec.inputs:
            v = spec.inputs[0]
        if v not in out:
            out.append(v)
    return out


def _means(avg: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-channel mean vector (MATLAB's ``mean(mean(avg, 1), 2)`` as the original test
    code takes it: a ``1 x C`` vector gives ONE value; see
    :mod:`matconv_port.data.average_image`) and, for a full mean image, ``C x H x W``."""
    vec = mean_hw(avg, vector_as_channels=False)
    if vec is None:
        return None, None
    return vec.reshape(-1, order="F").astype(np.float32), mean_image(avg)


def describe_model(model: Any, flow_channels_default: int = 20) -> ModelStreams:
    """Inspect a loaded model (``load_model``) for evaluation."""
    inputs = list(model.input_vars)
    meta = model.meta if isinstance(getattr(model, "meta", None), dict) else {}
    norm_meta = _get(meta, "normalization") or {}
    size = _get(norm_meta, "imageSize")
    size_arr = np.asarray(size, dtype=float).ravel() if size is not None else np.zeros(0)
    input_size = (int(size_arr[0]), int(size_arr[1])) if size_arr.size >= 2 else (224, 224)
    vec, img = _means(average_image(meta))
    names = _get(meta, "classes", "name")
    classes = tuple(str(c) for c in names) if isinstance(names, (list, tuple)) else ()
    svars = tuple(score_vars(model))
    if not svars:
        raise ModelFormatError("model has no prediction (class score) variable")
    if len(inputs) >= 2:
        flow_var = next((v for v in inputs if "flow" in v.lower()), inputs[1])
        rgb_var = next(v for v in inputs if v != flow_var)
        if vec is not None and vec.size > 3:
            flow_mean, rgb_mean = vec[:-3], vec[-3:]
            fimg = img[:-3] if img is not None else None
            rimg = img[-3:] if img is not None else None
        else:
            flow_mean = np.zeros(flow_channels_default, np.float32)
            rgb_mean = vec if vec is not None and vec.size == 3 else np.zeros(3, np.float32)
            fimg = rimg = None
        norm = Normalization(rgb_mean, flow_mean, input_size, rimg, fimg)
        return ModelStreams("fused", rgb_var, flow_var, norm, classes, svars, model.frames_per_clip)
    if len(inputs) != 1:
        raise ModelFormatError(f"model has {len(inputs)} input variables; expected 1 (one stream) or 2 (fused)")
    channels = int(size_arr[2]) if size_arr.size >= 3 else (int(vec.size) if vec is not None else 3)
    if vec is not None and vec.size not in (1, channels):
        channels = int(vec.size)
    mean = vec if vec is not None and vec.size == channels else np.zeros(channels, np.float32)
    if vec is not None and vec.size == 1 and channels > 1:
        mean = np.full(channels, vec[0], np.float32)
    if channels == 3:
        norm = Normalization(mean.astype(np.float32), None, input_size, img, None)
        return ModelStreams("rgb", inputs[0], None, norm, classes, svars, model.frames_per_clip)
    if channels % 4:
        raise ModelFormatError(f"input of {channels} channels is neither RGB (3) nor a u,v flow stack (multiple of 4)")
    norm = Normalization(None, mean.astype(np.float32), input_size, None, img)
    return ModelStreams("flow", None, inputs[0], norm, classes, svars, model.frames_per_clip)
