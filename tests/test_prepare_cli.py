"""`matconv-port prepare` on the command line: synthetic data, real videos, exit codes."""
from __future__ import annotations

import os

from click.testing import CliRunner

from matconv_port.cli import main
from matconv_port.data.example_videos import write_moving_square_video


def test_synthetic_command(tmp_path):
    r = CliRunner().invoke(main, ["prepare", "--synthetic", str(tmp_path / "s"), "--num-classes", "2",
                                  "--videos-per-class", "4", "--frames", "5", "--height", "32", "--width", "40"])
    assert r.exit_code == 0, r.output
    assert "2 classes" in r.output
    assert len(os.listdir(tmp_path / "s" / "jpegs_256")) == 8
    assert (tmp_path / "s" / "splits" / "testlist03.txt").is_file()


def test_videos_ok_then_resume(tmp_path):
    write_moving_square_video(tmp_path / "v" / "a.avi", frames=4)
    args = ["prepare", str(tmp_path / "v"), "--out", str(tmp_path / "d"), "--flow", "dis", "--no-progress"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "prepared 1 video(s), skipped 0" in r.output
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "prepared 0 video(s), skipped 1" in r.output


def test_failed_video_exit_2_with_summary(tmp_path):
    write_moving_square_video(tmp_path / "v" / "a.avi", frames=4)
    (tmp_path / "v" / "bad.mp4").write_bytes(b"not a video")
    r = CliRunner().invoke(main, ["prepare", str(tmp_path / "v"), "--out", str(tmp_path / "d"), "--flow", "dis", "--no-progress"])
    assert r.exit_code == 2
    assert "prepared 1 video(s)" in r.output and "1 failed" in r.output
    assert "bad.mp4" in r.output and "Traceback" not in r.output
    assert (tmp_path / "d" / ".prepare_done" / "a.json").is_file()


def test_bad_arguments_exit_2(tmp_path):
    runner = CliRunner()
    for args in (["prepare"], ["prepare", str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
                 ["prepare", "--synthetic", str(tmp_path / "s"), "--videos-per-class", "1"],
                 ["prepare", str(tmp_path), "--out", str(tmp_path / "o"), "--flow", "analytic"]):
        r = runner.invoke(main, args)
        assert r.exit_code == 2, (args, r.output)
        assert "Traceback" not in r.output
        assert r.output.strip().startswith("error:") or "Error" in r.output
