"""Evaluation outputs, each written atomically (temp file in the same folder, then
``os.replace``): ``summary.json``, ``per_class_accuracy.csv``, ``confusion.png``,
``scores.npz``."""
from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Any, Sequence

import numpy as np

from matconv_port.atomic import atomic_write_bytes as _atomic_write_bytes

__all__ = ["atomic_write_bytes", "write_json", "write_per_class_csv", "write_confusion_png", "write_scores_npz"]


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (creating its folder)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _atomic_write_bytes(path, data)


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(path: str, obj: Any) -> None:
    """JSON with NaN written as null."""
    atomic_write_bytes(path, (json.dumps(_clean(obj), indent=2) + "\n").encode("utf-8"))


def write_per_class_csv(path: str, classes: Sequence[str], cm: np.ndarray, per_class: np.ndarray) -> None:
    """``label,class,num_videos,correct,accuracy`` per class (label 1-based)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["label", "class", "num_videos", "correct", "accuracy"])
    for k, name in enumerate(classes):
        acc = per_class[k]
        w.writerow([k + 1, name, int(cm[k].sum()), int(cm[k, k]), "" if math.isnan(acc) else f"{acc:.6f}"])
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def write_confusion_png(path: str, cm: np.ndarray, classes: Sequence[str], title: str) -> None:
    """Row-normalised confusion matrix as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    k = len(classes)
    rows = cm.sum(axis=1, keepdims=True).astype(np.float64)
    norm = np.divide(cm, np.maximum(rows, 1), dtype=np.float64)
    size = min(24.0, max(5.0, 0.16 * k + 3))
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
    ax.set_title(title)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 60:
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        fs = max(4, min(9, int(300 / max(k, 1))))
        ax.set_xticklabels(classes, rotation=90, fontsize=fs)
        ax.set_yticklabels(classes, fontsize=fs)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_scores_npz(path: str, **arrays: Any) -> None:
    """``np.savez_compressed`` to ``path`` atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buf.getvalue())
