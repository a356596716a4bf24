"""Protocol plans and ``--plan-only``.

Grouping derivation (``cnn_train_dag.m``, validation branch, ``temporalStrideRandom``):
getBatch returns ``H x W x C x 1 x 100`` with entry ``e`` (0-based) = sample
``e // 2`` (0-based) unflipped for even ``e``, flipped for odd ``e`` (the dense branch
writes ``si`` then ``si+1`` per sample). ``reshape(x, H, W, C, [], 5)`` splits the 100
entries column-major into 20 x 5 and ``permute(.., [1 2 3 5 4])`` makes the 20 the
clip index: clip ``c`` holds entries ``c + 20*j``, j = 0..4. Below this reshape is
carried out with numpy in Fortran order, independently of the implementation.

Crop derivation (``'uniform'`` branch): for a 256 x 340 frame and 224 crops,
``indices_y = [1 33]``, ``indices_x = [1 117]``, ``center_y = floor(33/2)+1 = 17``,
``center_x = floor(117/2)+1 = 59`` (1-based), i.e. 0-based x/y 0,116 / 0,32 and the
centre (58, 16); loops ``for y, for x`` then the centre, each followed by its mirror.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from matconv_port.cli import main
from matconv_port.errors import DataError
from matconv_port.eval.plan import crop_boxes, get_protocol, plan_to_dict, plan_video
from matconv_port.eval.sampling import fusion_candidates
from test_eval_support import make_dataset


@pytest.mark.parametrize("n", [11, 37, 120, 400, 1000])
def test_fusion_paper_grouping_is_the_original_reshape(n):
    plan = plan_video(get_protocol("fusion-paper"), "v", 1, n, seed=3)
    samples = fusion_candidates(n).window(0) if n < 700 else None
    entries = np.arange(100)
    groups = entries.reshape(20, 5, order="F")  # MATLAB reshape(.., [], 5): column-major
    assert len(plan.clips) == 20
    for c, clip in enumerate(plan.clips):
        e = groups[c]
        assert clip.flip == bool(e[0] % 2) and all(bool(x % 2) == clip.flip for x in e)
        if samples is not None:
            assert list(clip.frames) == [samples[x // 2] for x in e]
        assert clip.crop is None and len(clip.flow) == 5 and len(clip.flow[0]) == 20


def test_fusion_consecutive_grouping():
    plan = plan_video(get_protocol("fusion-consecutive"), "v", 1, 300)
    samples = fusion_candidates(300).window(0)
    assert [c.frames for c in plan.clips[0:2]] == [tuple(samples[0:5])] * 2
    assert [c.flip for c in plan.clips[0:2]] == [False, True]
    assert plan.clips[-1].frames == tuple(samples[45:50])


def test_crop_boxes_for_stored_frames():
    assert crop_boxes(10, 256, 340, 224) == [(0, 0, 224, 224), (116, 0, 224, 224), (0, 32, 224, 224),
                                             (116, 32, 224, 224), (58, 16, 224, 224)]
    assert crop_boxes(6, 256, 340, 224) == [(0, 16, 224, 224), (116, 16, 224, 224), (58, 16, 224, 224)]
    assert crop_boxes(2, 256, 340, 224) == [(58, 16, 224, 224)]


def test_single_stream_plans():
    p = plan_video(get_protocol("crops10"), "v", 1, 100, stream="flow")
    assert len(p.clips) == 25 * 10
    assert [c.flip for c in p.clips[:4]] == [False, True, False, True]
    assert p.clips[0].crop == p.clips[1].crop == (0, 0, 224, 224)
    assert len(p.clips[0].flow) == 1 and len(p.clips[0].flow[0]) == 20
    d = plan_to_dict(plan_video(get_protocol("dense25"), "v", 1, 100, stream="rgb"))
    assert d["clips"][0] == {"frames": [1], "flow": [], "flip": False, "crop": None}
    with pytest.raises(DataError, match="RGB only"):
        plan_video(get_protocol("crops2"), "v", 1, 100, stream="flow")


def test_random_window_reproducible_and_among_originals():
    n = 1776  # 118 candidates -> s = randi(68), window (s+1):(s+50)
    cand = fusion_candidates(n)
    allowed = {tuple(w) for w in cand.windows()}
    picks = set()
    for seed in range(12):
        a = plan_video(get_protocol("fusion-consecutive"), "v_x", 1, n, seed=seed)
        b = plan_video(get_protocol("fusion-consecutive"), "v_x", 1, n, seed=seed)
        assert a == b
        frames = tuple(f for c in a.clips[::2] for f in c.frames)
        assert frames in allowed
        picks.add(frames)
    assert len(picks) > 1
    assert tuple(cand.values[:50]) not in allowed  # the original never starts at the first candidate


def test_too_short_names_the_video():
    with pytest.raises(DataError, match="v_short"):
        plan_video(get_protocol("fusion-paper"), "v_short", 1, 10)


def test_plan_only_cli(tmp_path):
    root = make_dataset(str(tmp_path / "d"), {"v_A_g01_c01": ("A", 11), "v_B_g01_c01": ("B", 40), "v_A_g01_c02": ("A", 12)},
                        ["A", "B"])
    out = tmp_path / "plan.jsonl"
    r = CliRunner().invoke(main, ["eval", "--split", "1", "--data-root", root, "--protocol", "fusion-paper",
                                  "--plan-only", str(out)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # test videos grouped by class (label order), file order within a class
    assert [(x["video"], x["label"], x["num_frames"]) for x in rows] == [
        ("v_A_g01_c01", 1, 11), ("v_A_g01_c02", 1, 12), ("v_B_g01_c01", 2, 40)]
    assert set(rows[0]) == {"video", "label", "num_frames", "clips"}
    c = rows[2]["clips"][1]
    assert set(c) == {"frames", "flow", "flip", "crop"} and c["flip"] is True and c["crop"] is None
    assert c["flow"][0] == [k for f in range(c["frames"][0] - 5, c["frames"][0] + 5) for k in (f, f)]

    r = CliRunner().invoke(main, ["eval", "--split", "1", "--data-root", root, "--protocol", "dense25",
                                  "--plan-only", str(out)])
    assert r.exit_code == 2 and "--stream" in r.output
    r = CliRunner().invoke(main, ["eval", "--split", "1", "--data-root", root, "--protocol", "crops6", "--stream", "rgb",
                                  "--plan-only", str(out)])
    assert r.exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["clips"][0]["crop"] == [0, 16, 224, 224]  # computed for the stored 256 x 340 frame


def test_plan_only_short_video_error_and_skip(tmp_path):
    root = make_dataset(str(tmp_path / "d"), {"v_A_g01_c01": ("A", 9), "v_A_g01_c02": ("A", 30)}, ["A"])
    out = tmp_path / "plan.jsonl"
    args = ["eval", "--split", "1", "--data-root", root, "--protocol", "dense25", "--stream", "flow", "--plan-only", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "v_A_g01_c01" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, args + ["--skip-missing"])
    assert r.exit_code == 0
    assert [json.loads(x)["video"] for x in out.read_text().splitlines()] == ["v_A_g01_c02"]


def test_plan_only_hmdb51(tmp_path):
    root = make_dataset(str(tmp_path / "d"), {"clipA_0": ("x", 30), "clipB_1": ("y", 30)}, ["x", "y"])
    s = tmp_path / "hmdb_splits"
    s.mkdir()
    (s / "x_test_split1.txt").write_text("clipA_0.avi 2 \nclipA_9.avi 1 \n")
    (s / "y_test_split1.txt").write_text("clipB_1.avi 2 \nclipB_7.avi 0 \n")
    out = tmp_path / "p.jsonl"
    r = CliRunner().invoke(main, ["eval", "--split", "1", "--data-root", root, "--dataset", "hmdb51", "--splits-dir", str(s),
                                  "--protocol", "crops10", "--stream", "flow", "--plan-only", str(out)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(x["video"], x["label"]) for x in rows] == [("clipA_0", 1), ("clipB_1", 2)]
    assert len(rows[0]["clips"]) == 250 and rows[0]["clips"][8]["crop"] == [58, 16, 224, 224]
