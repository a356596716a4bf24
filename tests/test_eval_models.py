"""End to end with real converted MatConvNet nets from ``fixtures/reference/`` (the
narrow two-stream fusion net and a small SimpleNN). The runner's per-video scores
are checked against a direct computation: every clip of the plan assembled here with
plain cv2/numpy (flip, u -> 255 - u, per-channel means), run through the model one
clip at a time, raw prediction maps averaged over space, then over clips and heads.
"""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
import torch

from matconv_port import load_model
from matconv_port.eval.plan import get_protocol, plan_video
from matconv_port.eval.runner import EvalOptions, evaluate_split
from test_eval_support import make_dataset

REF = os.path.join(os.path.dirname(__file__), "..", "fixtures", "reference")
FUSED = os.path.join(REF, "fusion_twostream_vgg16narrow_a.mat")
SMALL = os.path.join(REF, "simplenn_small_v7.mat")


def _img(root, *parts, grey):
    img = cv2.imread(os.path.join(root, *parts), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    return img.astype(np.float32) if grey else img[:, :, ::-1].astype(np.float32)


def _direct_clip(root, video, clip, rgb_mean, flow_mean):
    rgb, flow = [], []
    for f, stack in zip(clip.frames, clip.flow or [None] * len(clip.frames)):
        x = _img(root, "jpegs_256", video, f"frame{f:06d}.jpg", grey=False)
        if clip.crop:
            cx, cy, w, h = clip.crop
            x = x[cy:cy + h, cx:cx + w]
        if clip.flip:
            x = x[:, ::-1]
        rgb.append(np.transpose(x - rgb_mean, (2, 0, 1)))
        if stack is not None and flow_mean is not None:
            chans = []
            for c, k in enumerate(stack):
                u = _img(root, "tvl1_flow", "u" if c % 2 == 0 else "v", video, f"frame{k:06d}.jpg", grey=True)
                if clip.flip:
                    u = u[:, ::-1]
                    if c % 2 == 0:
                        u = 255 - u
                chans.append(u - flow_mean[c])
            flow.append(np.stack(chans))
    return torch.from_numpy(np.ascontiguousarray(np.stack(rgb))), (torch.from_numpy(np.ascontiguousarray(np.stack(flow))) if flow else None)


@pytest.mark.skipif(not os.path.exists(FUSED), reason="fixtures/reference not present")
def test_fused_reference_net_end_to_end(tmp_path):
    """``matconv-port eval`` on the bundled synthetic dataset (``prepare --synthetic``)."""
    from click.testing import CliRunner

    from matconv_port.cli import main
    from matconv_port.data.synthetic import make_synthetic_dataset

    root = str(tmp_path / "d")
    info = make_synthetic_dataset(root, num_classes=7, videos_per_class=2, frames=23, height=40, width=52, seed=3)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["eval", "--split", "1", "--model", FUSED, "--data-root", root, "--out", str(out),
                                  "--max-videos", "1", "--workers", "0", "--no-progress"])
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["num_videos"] == 1 and s["model_kind"] == "fused" and s["clips_per_video"] == 20
    assert s["protocol"] == "fusion-paper" and 0 <= s["top1"] <= 1
    video = str(np.load(out / "scores.npz")["videos"][0])
    assert video in info["splits"][1]["test"]
    npz = np.load(out / "scores.npz")
    scores = npz["scores"][0]  # heads x clips x K
    np.testing.assert_allclose(npz["video_scores"][0], scores.mean(axis=(0, 1)), rtol=1e-6)

    model = load_model(FUSED)
    avg = np.asarray(model.meta["normalization"]["averageImage"], np.float32).ravel()
    plan = plan_video(get_protocol("fusion-paper"), video, 1, 23)
    for c in (0, 1, 13):  # a clip, its mirror, and one from the middle (every clip costs a forward pass)
        rgb, flow = _direct_clip(root, video, plan.clips[c], avg[-3:], avg[:-3])
        with torch.no_grad():
            v = model.forward_vars({"input": rgb, "input_flow": flow}, num_videos=1)
        want = np.stack([v[h].mean(dim=(0, 2, 3)).numpy() for h in ("x38_spatial", "x38_temporal")])
        np.testing.assert_allclose(scores[:, c], want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.skipif(not os.path.exists(SMALL), reason="fixtures/reference not present")
def test_simplenn_crops_end_to_end(tmp_path):
    model = load_model(SMALL)
    K = model.forward_vars({"x0": torch.zeros(1, 3, 9, 9)})["x7"].shape[1]
    classes = [f"k{i}" for i in range(K)]
    root = make_dataset(str(tmp_path / "d"), {"v_k1_g01_c01": ("k1", 30)}, classes, size=(12, 15))
    out = tmp_path / "out"
    s = evaluate_split(EvalOptions(SMALL, root, protocol="crops6", out_dir=str(out), workers=0, progress=False), 1)
    assert s["score_vars"] == ["x7"]  # the input of the final softmax: raw scores
    got = np.load(out / "scores.npz")["video_scores"][0]
    avg = np.asarray(model.meta["normalization"]["averageImage"], np.float32).ravel()
    plan = plan_video(get_protocol("crops6"), "v_k1_g01_c01", 2, 30, stream="rgb", frame_size=(12, 15), crop_size=9)
    scores = []
    for clip in plan.clips:
        rgb, _ = _direct_clip(root, "v_k1_g01_c01", clip, avg, None)
        with torch.no_grad():
            scores.append(model.forward_vars({"x0": rgb})["x7"].mean(dim=(0, 2, 3)).numpy())
    np.testing.assert_allclose(got, np.mean(scores, axis=0), rtol=1e-5, atol=1e-5)
