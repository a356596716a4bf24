"""MatConvNet-style training output: per-iteration lines, the stats JSON and the
training-curve PNG (``net-train.pdf`` in the original; objective and errors per epoch,
train vs val)."""
from __future__ import annotations

import json
import os
from typing import Any


def format_iteration(mode: str, epoch: int, it: int, n_it: int, lr: float, hz: float, values: dict[str, float]) -> str:
    """``train: epoch 01:   3/ 10: lr: 1e-03, 12.3 Hz objective:2.303 top1err:0.900`` as
    ``cnn_train_dag`` prints it (values are running averages over the epoch)."""
    line = f"{mode}: epoch {epoch:02d}: {it:3d}/{n_it:3d}: lr: {lr:.0e}, {hz:.1f} Hz"
    for k, v in values.items():
        line += f" {k}:{v:.3f}"
    return line


def _atomic_write_text(path: str, text: str) -> None:
    # one writer for every file (a full disk / read-only folder: one line naming the path)
    from matconv_port.atomic import atomic_write_text

    atomic_write_text(path, text)


def write_stats_json(path: str, stats: dict[str, Any]) -> None:
    """``{"train": [per-epoch dict], "val": [...], ...}`` written atomically."""
    _atomic_write_text(path, json.dumps(stats, indent=1, sort_keys=True))


def plot_curves(path: str, stats: dict[str, Any]) -> None:
    """Objective (left) and errors (right) per epoch, train vs val, as a PNG (atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode, style in (("train", "o-"), ("val", "s--")):
        rows = stats.get(mode) or []
        if not rows:
            continue
        epochs = [r["epoch"] for r in rows]
        keys = sorted({k for r in rows for k in r if k not in ("epoch", "num", "time", "lr")})
        for k in keys:
            ys = [r.get(k, float("nan")) for r in rows]
            ax = axes[1] if "err" in k else axes[0]
            ax.plot(epochs, ys, style, label=f"{k} ({mode})")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("objective")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("error")
    axes[1].set_ylim(0, 1)
    axes[1].grid(True)
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    from matconv_port.atomic import atomic_path

    try:
        with atomic_path(path, ".png") as tmp:
            fig.savefig(tmp, dpi=80)
    finally:
        plt.close(fig)
