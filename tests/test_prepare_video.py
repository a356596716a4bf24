"""The real-video path: OpenCV-written videos -> frames and flow JPEGs in the original layout."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from matconv_port.data.example_videos import square_frames, write_moving_square_video, write_video
from matconv_port.data.prepare import prepare_video, prepare_videos
from matconv_port.data.writers import done_marker_path, flow_frame_path, rgb_frame_path

N = 10  # frames per example video


def _gray(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert img is not None, path
    return img.astype(int)


def _square_mask(root: Path, video: str, k: int) -> np.ndarray:
    g = _gray(rgb_frame_path(root, video, k))
    m = g > 160  # the bright square (grey >= 170) in RGB frame k; background <= 110
    return cv2.erode(m.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)  # its inside


@pytest.mark.parametrize("ext", [".avi", ".mp4"])
@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_square_right_and_down(tmp_path, ext, method):
    src = tmp_path / "videos"
    write_moving_square_video(src / f"right{ext}", velocity=(4, 0), frames=N)
    write_moving_square_video(src / f"down{ext}", velocity=(0, 4), frames=N)
    out = tmp_path / "data"
    summary = prepare_videos(src, out, flow=method, progress=False)
    assert [r.status for r in summary.results] == ["done", "done"]
    for video, moving, still in (("right", "u", "v"), ("down", "v", "u")):
        for k in (2, 5):
            m = _square_mask(out, video, k)
            assert m.sum() > 100
            g_move = _gray(flow_frame_path(out, moving, video, k))
            g_still = _gray(flow_frame_path(out, still, video, k))
            # 4 px/frame * 255/40 = 25.5 grey levels above 128 on the square (resized: more)
            assert np.median(g_move[m]) > 140, (video, k)
            assert abs(np.median(g_still[m]) - 128) <= 4
            corner = g_move[:30, :30]  # static background far from the square
            assert abs(np.median(corner) - 128) <= 2


def test_counts_names_and_size(tmp_path):
    src = tmp_path / "v"
    write_moving_square_video(src / "clip_a.avi", velocity=(2, 0), frames=N)  # 160 x 120
    out = tmp_path / "data"
    res = prepare_video(src / "clip_a.avi", out, flow="dis")
    assert res.status == "done" and res.frames == N
    rgb = sorted(os.listdir(out / "jpegs_256" / "clip_a"))
    assert rgb == [f"frame{k:06d}.jpg" for k in range(1, N + 1)]
    for axis in "uv":
        names = sorted(os.listdir(out / "tvl1_flow" / axis / "clip_a"))
        assert names == [f"frame{k:06d}.jpg" for k in range(1, N)]
    img = cv2.imread(str(rgb_frame_path(out, "clip_a", 1)))
    assert img.shape == (256, 340, 3)  # 160 x 120 -> shorter side 256, even sizes
    assert cv2.imread(str(flow_frame_path(out, "u", "clip_a", 1)), cv2.IMREAD_UNCHANGED).shape == (256, 340)
    assert done_marker_path(out, "clip_a").is_file()


def test_flow_frame_k_is_motion_from_k_to_k_plus_1(tmp_path):
    # the square stands still except between RGB frames 4 and 5, where it jumps 6 px right
    images = square_frames([(60, 40)] * 4 + [(66, 40)] * 4)
    write_video(tmp_path / "v" / "jump.avi", images)
    out = tmp_path / "d"
    assert prepare_video(tmp_path / "v" / "jump.avi", out, flow="dis", short_side=None).status == "done"
    u = {k: _gray(flow_frame_path(out, "u", "jump", k)) for k in range(1, 8)}
    m = _square_mask(out, "jump", 4)
    assert np.median(u[4][m]) > 145
    for k in (1, 2, 3, 5, 6, 7):
        assert abs(np.median(u[k][m]) - 128) <= 3, k


def test_tvl1_default_on_small_frames(tmp_path):
    write_moving_square_video(tmp_path / "v" / "r.avi", velocity=(3, 0), frames=4, width=96, height=72)
    out = tmp_path / "d"
    res = prepare_video(tmp_path / "v" / "r.avi", out, short_side=None)  # flow="tvl1" by default
    assert res.status == "done", res.error
    m = _square_mask(out, "r", 2)
    # TV-L1 (smoothing prior) underestimates a 3 px shift on a small frame: ~2 px = 140
    assert np.median(_gray(flow_frame_path(out, "u", "r", 2))[m]) > 136
    assert abs(np.median(_gray(flow_frame_path(out, "v", "r", 2))[m]) - 128) <= 3


def test_resume_skips_finished_and_redoes_interrupted(tmp_path):
    src = tmp_path / "v"
    for name in ("a", "b", "c"):
        write_moving_square_video(src / f"{name}.avi", velocity=(2, 1), frames=6)
    out = tmp_path / "d"
    first = prepare_videos(src, out, flow="dis", progress=False)
    assert len(first.done) == 3
    stamp = rgb_frame_path(out, "a", 1).stat().st_mtime_ns
    # "b" was interrupted: marker gone, a stale extra frame left behind
    done_marker_path(out, "b").unlink()
    stale = rgb_frame_path(out, "b", 99)
    stale.write_bytes(b"partial")
    second = prepare_videos(src, out, flow="dis", progress=False)
    assert {r.video: r.status for r in second.results} == {"a": "skipped", "b": "done", "c": "skipped"}
    assert rgb_frame_path(out, "a", 1).stat().st_mtime_ns == stamp
    assert not stale.exists()
    assert len(os.listdir(out / "jpegs_256" / "b")) == 6
    third = prepare_videos(src, out, flow="farneback", progress=False)
    assert len(third.skipped) == 3 and any("another flow method" in line for line in third.lines())
    fourth = prepare_videos(src, out, flow="dis", progress=False, force=True)
    assert len(fourth.done) == 3


def test_corrupt_video_gives_one_line_and_others_continue(tmp_path):
    src = tmp_path / "v"
    write_moving_square_video(src / "good1.avi", frames=5)
    write_moving_square_video(src / "good2.mp4", frames=5)
    (src / "broken.avi").write_bytes(b"RIFF" + os.urandom(3000))
    (src / "empty.mp4").write_bytes(b"")
    out = tmp_path / "d"
    errors: list[str] = []
    summary = prepare_videos(src, out, flow="dis", progress=False, report=errors.append)
    status = {r.video: r.status for r in summary.results}
    assert status == {"broken": "failed", "empty": "failed", "good1": "done", "good2": "done"}
    assert len(errors) == 2
    for r in summary.failed:
        assert "\n" not in r.error and r.source in r.error
    assert not (out / "jpegs_256" / "broken").exists()
    text = "\n".join(summary.lines())
    assert "2 failed" in text and "broken.avi" in text and "empty.mp4" in text


def test_parallel_workers_and_classes_from_dirs(tmp_path):
    src = tmp_path / "classes"
    for cls, vel in (("Right", (3, 0)), ("Down", (0, 3))):
        for g in (1, 2, 3):
            write_moving_square_video(src / cls / f"v_{cls}_g{g:02d}_c01.avi", velocity=vel, frames=3, seed=g,
                                      width=64, height=48)
    out = tmp_path / "d"
    # workers=2: a spawn pool (each worker imports the package, ~2-3 s)
    summary = prepare_videos(src, out, flow="dis", workers=2, progress=False, classes_from_dirs=True,
                             test_fraction=0.34, short_side=None)
    assert len(summary.done) == 6 and not summary.failed
    splits = out / "splits"
    assert (splits / "classInd.txt").read_text() == "1 Down\n2 Right\n"
    train = (splits / "trainlist01.txt").read_text().splitlines()
    test = (splits / "testlist01.txt").read_text().splitlines()
    assert len(train) == 4 and len(test) == 2
    assert all(line.startswith("Down/v_Down_g") and line.endswith(".avi 1") or
               line.startswith("Right/v_Right_g") and line.endswith(".avi 2") for line in train)


def test_interrupted_video_is_redone(tmp_path, monkeypatch):
    import matconv_port.data.prepare as prep

    write_moving_square_video(tmp_path / "v" / "x.avi", frames=6)
    real = prep.create_flow

    def dying(method):
        fn = real(method)
        calls = {"n": 0}

        def flow(a, b):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the video
            return fn(a, b)

        return flow

    monkeypatch.setattr(prep, "create_flow", dying)
    with pytest.raises(KeyboardInterrupt):
        prepare_videos(tmp_path / "v", tmp_path / "d", flow="dis", progress=False)
    assert not done_marker_path(tmp_path / "d", "x").exists()
    assert len(os.listdir(tmp_path / "d" / "jpegs_256" / "x")) == 4  # partial: frames 1-4, flows 1-2
    monkeypatch.setattr(prep, "create_flow", real)
    again = prepare_videos(tmp_path / "v", tmp_path / "d", flow="dis", progress=False)
    assert [r.status for r in again.results] == ["done"]
    assert len(os.listdir(tmp_path / "d" / "jpegs_256" / "x")) == 6
    assert len(os.listdir(tmp_path / "d" / "tvl1_flow" / "u" / "x")) == 5
