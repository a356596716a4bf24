"""The evaluation runner: what is fed, how scores are averaged, reports, resuming,
missing data. A stand-in model (``test_eval_support.StandInModel``) returns scores
that reveal the frames, flow stacks and flips it was given; the expected scores are
computed from the ``--plan-only`` JSON and the frame encoding, without reading images.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from matconv_port.cli import main
from matconv_port.errors import DataError
from matconv_port.eval.runner import SCORES_LOG, EvalOptions, evaluate, evaluate_split
from test_eval_support import StandInModel, expected_clip_scores, make_dataset, patch_loader

CLASSES = ["c0", "c1", "c2", "c3"]
VIDEOS = {"v_c0_g01_c01": ("c0", 11), "v_c0_g01_c02": ("c0", 23), "v_c1_g01_c01": ("c1", 16), "v_c2_g01_c01": ("c2", 60)}


@pytest.fixture()
def data(tmp_path):
    return make_dataset(str(tmp_path / "data"), VIDEOS, CLASSES)


def _plans(root, protocol, stream=None, seed=0):
    out = os.path.join(root, f"plan-{protocol}.jsonl")
    args = ["eval", "--split", "1", "--data-root", root, "--protocol", protocol, "--plan-only", out, "--seed", str(seed)]
    r = CliRunner().invoke(main, args + (["--stream", stream] if stream else []))
    assert r.exit_code == 0, r.output
    return [json.loads(x) for x in open(out)]


def _opts(root, out, **kw):
    return EvalOptions(model_path="standin.mat", data_root=root, out_dir=str(out), workers=0, progress=False, **kw)


@pytest.mark.parametrize("kind,protocol", [("fused", "fusion-paper"), ("fused", "fusion-consecutive"),
                                           ("rgb", "dense25"), ("flow", "dense25")])
def test_scores_are_raw_means_over_space_clips_flips_heads(monkeypatch, data, tmp_path, kind, protocol):
    model = StandInModel(kind)
    patch_loader(monkeypatch, model)
    summary = evaluate_split(_opts(data, tmp_path / "out", protocol=protocol, seed=5), 1)
    npz = np.load(tmp_path / "out" / "scores.npz")
    plans = _plans(data, protocol, None if kind == "fused" else kind, seed=5)
    assert list(npz["videos"]) == [p["video"] for p in plans]
    for v, plan in enumerate(plans):
        want = np.stack([expected_clip_scores(kind, c, 4) for c in plan["clips"]], axis=1)  # heads x clips x K
        np.testing.assert_allclose(npz["scores"][v], want, atol=1e-3)
        np.testing.assert_allclose(npz["video_scores"][v], want.mean(axis=(0, 1)), atol=1e-3)
    assert summary["num_videos"] == 4 and summary["protocol"] == protocol
    assert list(npz["clip_flip"][:2]) == [False, True]


def test_reports_and_metrics(monkeypatch, data, tmp_path):
    patch_loader(monkeypatch, StandInModel("rgb"))
    out = tmp_path / "out"
    s = evaluate_split(_opts(data, out), 1)
    for f in ("summary.json", "per_class_accuracy.csv", "confusion.png", "scores.npz", SCORES_LOG):
        assert (out / f).exists(), f
    # stand-in rgb: class 0 score = mean R - 10 > class 1 = mean R - 20 > 0 = classes 2, 3:
    # every video predicts c0 -> top-1 = 2/4 (the two c0 videos), per class [1, 0, 0, -]
    assert s["top1"] == pytest.approx(0.5) and s["top5"] == pytest.approx(1.0)
    assert s["mean_class_accuracy"] == pytest.approx(1 / 3)  # c3 has no test video
    summary = json.loads((out / "summary.json").read_text())
    assert {"top1", "top5", "mean_class_accuracy", "num_videos", "protocol", "model"} <= set(summary)
    rows = (out / "per_class_accuracy.csv").read_text().splitlines()
    assert rows[1].startswith("1,c0,2,2,1.0") and rows[4].startswith("4,c3,0,0,")


def test_resume_after_interruption(monkeypatch, data, tmp_path):
    out = tmp_path / "out"
    patch_loader(monkeypatch, StandInModel("rgb", fail_after=12))  # dense25: 5 batches per video: dies in video 3
    with pytest.raises(KeyboardInterrupt):
        evaluate_split(_opts(data, out), 1)
    lines = (out / SCORES_LOG).read_text().splitlines()
    assert len(lines) == 3  # header + 2 complete videos
    with open(out / SCORES_LOG, "a") as f:
        f.write('{"video": "v_c1_g01_c01", "label": 2, "sco')  # a torn write
    model = StandInModel("rgb")
    patch_loader(monkeypatch, model)
    evaluate_split(_opts(data, out), 1)
    assert model.calls == 10  # only the 2 videos not yet scored
    resumed = np.load(out / "scores.npz")
    patch_loader(monkeypatch, StandInModel("rgb"))
    evaluate_split(_opts(data, tmp_path / "fresh"), 1)
    fresh = np.load(tmp_path / "fresh" / "scores.npz")
    np.testing.assert_array_equal(resumed["scores"], fresh["scores"])
    with pytest.raises(DataError, match="different run"):
        evaluate_split(_opts(data, out, seed=9), 1)


def test_missing_frame_error_or_skip(monkeypatch, data, tmp_path):
    os.remove(os.path.join(data, "tvl1_flow", "v", "v_c1_g01_c01", "frame000003.jpg"))
    patch_loader(monkeypatch, StandInModel("fused"))
    with pytest.raises(DataError, match=r"v_c1_g01_c01.*frame000003\.jpg"):
        evaluate_split(_opts(data, tmp_path / "a"), 1)
    s = evaluate_split(_opts(data, tmp_path / "b", skip_missing=True), 1)
    assert s["num_videos"] == 3 and [x["video"] for x in s["skipped"]] == ["v_c1_g01_c01"]
    with open(os.path.join(data, "jpegs_256", "v_c2_g01_c01", "frame000006.jpg"), "wb") as f:
        f.write(b"not a jpeg")  # frame 6 is the first sample of every fused plan
    s = evaluate_split(_opts(data, tmp_path / "c", skip_missing=True), 1)
    reasons = {x["video"]: x["reason"] for x in s["skipped"]}
    assert s["num_videos"] == 2 and "frame000006.jpg: not a readable JPEG" in reasons["v_c2_g01_c01"]


def test_short_video_and_missing_folder(monkeypatch, tmp_path):
    root = make_dataset(str(tmp_path / "d"), {"v_c0_g01_c01": ("c0", 8), "v_c1_g01_c01": ("c1", 20)}, CLASSES)
    with open(os.path.join(root, "splits", "testlist01.txt"), "a") as f:
        f.write("c2/v_c2_g01_c09.avi\n")  # listed, but no frames folder
    patch_loader(monkeypatch, StandInModel("flow"))
    with pytest.raises(DataError, match="v_c0_g01_c01.*too short"):
        evaluate_split(_opts(root, tmp_path / "a"), 1)
    s = evaluate_split(_opts(root, tmp_path / "b", skip_missing=True), 1)
    assert sorted(x["video"] for x in s["skipped"]) == ["v_c0_g01_c01", "v_c2_g01_c09"]
    assert s["num_videos"] == 1


def test_workers_and_cli(monkeypatch, data, tmp_path):
    patch_loader(monkeypatch, StandInModel("rgb"))
    out = tmp_path / "cli"
    r = CliRunner().invoke(main, ["eval", "--split", "1", "--model", "m.mat", "--data-root", data, "--out", str(out),
                                  "--protocol", "crops2", "--workers", "2", "--no-progress"])
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["protocol"] == "crops2" and s["clips_per_video"] == 50
    r = CliRunner().invoke(main, ["eval", "--split", "1", "--model", "m.mat", "--data-root", data, "--out", str(out),
                                  "--protocol", "fusion-paper"])
    assert r.exit_code == 2 and "fused" in r.output


def test_split_all_mean(monkeypatch, data, tmp_path):
    for n in (2, 3):
        for kind in ("train", "test"):
            src = os.path.join(data, "splits", f"{kind}list01.txt")
            with open(src) as f, open(os.path.join(data, "splits", f"{kind}list0{n}.txt"), "w") as g:
                lines = f.read().splitlines()
                g.write("\n".join(lines[: 4 - n + 1]) + "\n" if kind == "test" else "")
    patch_loader(monkeypatch, StandInModel("rgb"))
    s = evaluate(_opts(data, tmp_path / "all"), "all")
    per = [json.loads((tmp_path / "all" / f"split{k}" / "summary.json").read_text()) for k in (1, 2, 3)]
    assert s["top1"] == pytest.approx(np.mean([p["top1"] for p in per]))
    assert [p["num_videos"] for p in per] == [4, 3, 2]


def test_fused_net_with_other_clip_length(monkeypatch, data, tmp_path):
    # a fused net built for nFrames = 3: numValFrames = 30 samples, 3-frame clips, still 20 clips
    patch_loader(monkeypatch, StandInModel("fused", frames_per_clip=3))
    s = evaluate_split(_opts(data, tmp_path / "o"), 1)
    npz = np.load(tmp_path / "o" / "scores.npz")
    assert s["clips_per_video"] == 20 and npz["clip_frames"].shape == (4, 20, 3)
