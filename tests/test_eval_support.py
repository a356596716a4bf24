"""Helpers for the eval tests (no tests here): tiny datasets in the UCF101 layout whose
frames encode their frame number, and a stand-in model with the ``load_model`` API."""
from __future__ import annotations

import os
from types import SimpleNamespace

import cv2
import numpy as np
import torch


def rgb_value(f: int) -> int:
    """Grey level of RGB frame ``f`` (all channels, every pixel)."""
    return (3 * f) % 200 + 10


def u_value(k: int) -> int:
    return (5 * k) % 200 + 20


def v_value(k: int) -> int:
    return (7 * k) % 150 + 60


def make_dataset(root: str, videos: dict[str, tuple[str, int]], classes: list[str], size=(24, 32),
                 test: list[str] | None = None) -> str:
    """Write ``jpegs_256``/``tvl1_flow`` for ``videos`` (name -> (class, number of RGB
    frames)) and ``splits/`` (``classInd.txt``, ``testlist01.txt``, ``trainlist01.txt``)."""
    h, w = size
    for name, (_, n) in videos.items():
        d = os.path.join(root, "jpegs_256", name)
        os.makedirs(d, exist_ok=True)
        for f in range(1, n + 1):
            cv2.imwrite(os.path.join(d, f"frame{f:06d}.jpg"), np.full((h, w, 3), rgb_value(f), np.uint8))
        for axis, fn in (("u", u_value), ("v", v_value)):
            d = os.path.join(root, "tvl1_flow", axis, name)
            os.makedirs(d, exist_ok=True)
            for k in range(1, n):
                cv2.imwrite(os.path.join(d, f"frame{k:06d}.jpg"), np.full((h, w), fn(k), np.uint8))
    s = os.path.join(root, "splits")
    os.makedirs(s, exist_ok=True)
    with open(os.path.join(s, "classInd.txt"), "w") as f:
        f.writelines(f"{i} {c}\n" for i, c in enumerate(classes, 1))
    names = test if test is not None else list(videos)
    with open(os.path.join(s, "testlist01.txt"), "w") as f:
        f.writelines(f"{videos[v][0]}/{v}.avi\n" for v in names)
    with open(os.path.join(s, "trainlist01.txt"), "w") as f:
        f.write("")
    return root


class StandInModel(torch.nn.Module):
    """The ``load_model`` API with scores that reveal what was fed.

    Fused (``kind='fused'``): inputs ``input`` (3 ch) and ``input_flow`` (20 ch); head
    ``pred_rgb``: class 0 = mean R, class 1 = mean G of the video's frames; head
    ``pred_flow``: class 0 = mean of the u channels, class 1 = mean of v. Single
    stream ``rgb``/``flow``: one input ``x0`` and head ``pred``. Every output map is
    2 x 3 with a zero-mean spatial pattern added, so only spatial means are stable.
    ``calls`` counts forward calls; ``fail_after`` raises KeyboardInterrupt.
    """

    def __init__(self, kind: str = "fused", num_classes: int = 4, means=None, fail_after: int | None = None,
                 frames_per_clip: int = 5):
        super().__init__()
        self.kind = kind
        self.K = num_classes
        rgb_mean = [10.0, 20.0, 30.0]
        flow_mean = [128.0] * 20
        avg = {"fused": flow_mean + rgb_mean, "rgb": rgb_mean, "flow": flow_mean}[kind] if means is None else means
        channels = {"fused": 20, "rgb": 3, "flow": 20}[kind]
        self.meta = {"normalization": {"averageImage": np.array(avg, np.float32).reshape(1, 1, -1),
                                       "imageSize": [16.0, 16.0, float(channels)]},
                     "classes": {"name": [f"c{i}" for i in range(num_classes)]}}
        self.input_vars = {"fused": ["input", "input_flow"], "rgb": ["x0"], "flow": ["x0"]}[kind]
        self.prediction_vars = ["pred_rgb", "pred_flow"] if kind == "fused" else ["pred"]
        self.frames_per_clip = frames_per_clip if kind == "fused" else None
        self.layer_specs = []
        self.calls = 0
        self.items = 0
        self.fail_after = fail_after

    def _head(self, x: torch.Tensor, num_videos: int, channel_sets) -> torch.Tensor:
        per = x.mean(dim=(2, 3)).reshape(num_videos, -1, x.shape[1])  # videos x frames x C (pixel means)
        out = torch.zeros(num_videos, self.K, 2, 3)
        for k, chans in enumerate(channel_sets):
            out[:, k] = per[:, :, chans].mean(dim=(1, 2))[:, None, None]
        pattern = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 2.0, -0.5]])
        return out + pattern

    def forward_vars(self, inputs, num_videos=None, outputs=None):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt
        nv = num_videos or next(iter(inputs.values())).shape[0]
        self.items += next(iter(inputs.values())).shape[0]
        if self.kind == "fused":
            return {"pred_rgb": self._head(inputs["input"], nv, [[0], [1]]),
                    "pred_flow": self._head(inputs["input_flow"], nv, [list(range(0, 20, 2)), list(range(1, 20, 2))])}
        if self.kind == "rgb":
            return {"pred": self._head(inputs["x0"], nv, [[0], [1]])}
        return {"pred": self._head(inputs["x0"], nv, [list(range(0, 20, 2)), list(range(1, 20, 2))])}


def expected_clip_scores(kind: str, clip: dict, num_classes: int) -> np.ndarray:
    """Scores the stand-in must give for one ``--plan-only`` clip (heads x K), computed
    from the frame encoding (no image is read)."""
    flip = clip["flip"]
    rgb = np.mean([rgb_value(f) for f in clip["frames"]])
    stacks = clip["flow"]
    us = [u_value(s[c]) for s in stacks for c in range(0, len(s), 2)]
    vs = [v_value(s[c]) for s in stacks for c in range(1, len(s), 2)]
    u = np.mean([255 - x if flip else x for x in us]) - 128 if us else 0.0
    v = np.mean(vs) - 128 if vs else 0.0
    heads = []
    if kind in ("fused", "rgb"):
        heads.append([rgb - 10, rgb - 20] + [0.0] * (num_classes - 2))
    if kind in ("fused", "flow"):
        heads.append([u, v] + [0.0] * (num_classes - 2))
    return np.array(heads)


def patch_loader(monkeypatch, model) -> SimpleNamespace:
    """Make ``load_model`` (as the runner imports it) return ``model``."""
    import matconv_port

    monkeypatch.setattr(matconv_port, "load_model", lambda *a, **k: model)
    return SimpleNamespace(model=model)
