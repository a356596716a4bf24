"""Accuracy measures over per-video class scores.

``scores`` is ``V x K`` (videos x classes, raw scores averaged as the protocol says);
``labels`` are 1-based class indices (MatConvNet's / classInd.txt's). Ties in
top-k: a class counts as predicted if its score is among the ``k`` largest by a
stable descending sort (lower class index first), as MATLAB's ``sort(..,'descend')``
orders equal values.
"""
from __future__ import annotations

import numpy as np

__all__ = ["topk_correct", "confusion_matrix", "per_class_accuracy", "summarize"]


def _ranks(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-np.asarray(scores, dtype=np.float64), axis=1, kind="stable")


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Boolean per video: the (1-based) label is among the top ``k`` classes."""
    labels0 = np.asarray(labels, dtype=np.int64) - 1
    order = _ranks(scores)[:, :k]
    return (order == labels0[:, None]).any(axis=1)


def confusion_matrix(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``K x K`` counts, rows = true class, columns = top-1 prediction (0-based)."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    if len(labels):
        pred = _ranks(scores)[:, 0]
        np.add.at(cm, (np.asarray(labels, dtype=np.int64) - 1, pred), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Top-1 accuracy of each class (NaN for a class with no test video)."""
    totals = cm.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / np.maximum(totals, 1), np.nan)


def summarize(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """``top1``, ``top5``, ``mean_class_accuracy`` (mean over classes that have test
    videos), all fractions in 0..1, plus ``num_videos`` and the confusion matrix."""
    scores = np.asarray(scores, dtype=np.float64).reshape(len(labels), -1) if len(labels) else np.zeros((0, num_classes))
    labels = np.asarray(labels, dtype=np.int64)
    n = int(len(labels))
    cm = confusion_matrix(scores, labels, num_classes)
    pca = per_class_accuracy(cm)
    present = ~np.isnan(pca)
    return {
        "top1": float(topk_correct(scores, labels, 1).mean()) if n else float("nan"),
        "top5": float(topk_correct(scores, labels, min(5, num_classes)).mean()) if n else float("nan"),
        "mean_class_accuracy": float(pca[present].mean()) if present.any() else float("nan"),
        "num_videos": n,
        "confusion": cm,
        "per_class": pca,
    }
