"""MatConvNet-style training output: per-iteration lines (or a progress bar), the stats JSON and the
training-curve PNG (``net-train.pdf`` in the original; objective and errors per epoch,
train vs val)."""
from __future__ import annotations

import json
import sys
from typing import IO, Any, Callable

from matconv_port.atomic import atomic_path, atomic_write_text


#: without a progress bar, a per-iteration line every this many iterations (and the last)
LOG_EVERY = 10


def format_values(lr: float, hz: float, values: dict[str, float]) -> str:
    """``lr: 1e-03, 12.3 Hz objective:2.303 top1err:0.900`` (running averages)."""
    return f"lr: {lr:.0e}, {hz:.1f} Hz" + "".join(f" {k}:{v:.3f}" for k, v in values.items())


def format_iteration(mode: str, epoch: int, it: int, n_it: int, lr: float, hz: float, values: dict[str, float]) -> str:
    """``train: epoch 01:   3/ 10: lr: 1e-03, 12.3 Hz objective:2.303 top1err:0.900`` as
    ``cnn_train_dag`` prints it (values are running averages over the epoch)."""
    return f"{mode}: epoch {epoch:02d}: {it:3d}/{n_it:3d}: " + format_values(lr, hz, values)


class IterationLog:
    """The per-iteration output of one epoch.

    With ``progress`` on a terminal (``stream``, default stderr, is a TTY): a tqdm bar
    whose postfix shows the latest running averages, so no line scrolls under it.
    Otherwise ``log`` gets the ``cnn_train_dag`` line every ``every`` iterations and at
    the last. Lines logged after :meth:`close` (epoch summaries) print as usual."""

    def __init__(self, mode: str, epoch: int, total: int, log: Callable[[str], None], *, progress: bool = True,
                 stream: IO[str] | None = None, every: int = LOG_EVERY):
        self.mode, self.epoch, self.total, self.log, self.every = mode, epoch, total, log, max(1, int(every))
        stream = sys.stderr if stream is None else stream
        self.bar = None
        if progress and getattr(stream, "isatty", lambda: False)():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"{mode} epoch {epoch}", file=stream, leave=False, dynamic_ncols=True,
                            mininterval=0)

    def update(self, it: int, lr: float, hz: float, values: dict[str, float]) -> None:
        """Iteration ``it`` (1-based) is done."""
        if self.bar is not None:
            self.bar.set_postfix_str(format_values(lr, hz, values), refresh=False)
            self.bar.update(1)
        elif it % self.every == 0 or it == self.total:
            self.log(format_iteration(self.mode, self.epoch, it, self.total, lr, hz, values))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def write_stats_json(path: str, stats: dict[str, Any]) -> None:
    """``{"train": [per-epoch dict], "val": [...], ...}`` written atomically."""
    atomic_write_text(path, json.dumps(stats, indent=1, sort_keys=True))


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
    try:
        with atomic_path(path, ".png") as tmp:
            fig.savefig(tmp, dpi=80, format="png")
    finally:
        plt.close(fig)
