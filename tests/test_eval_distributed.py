"""``torchrun`` evaluation on CPU (gloo): two processes share the test videos and write
the summary of one process (same predictions, scores within fp32 tolerance,
``world_size`` recorded), and a multi-process run resumes a partial run, whichever
number of processes wrote it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from matconv_port.cli import main
from matconv_port.eval import shards
from test_eval_support import make_dataset

CLASSES = ["c0", "c1", "c2", "c3"]
VIDEOS = {"v_c0_g01_c01": ("c0", 11), "v_c0_g01_c02": ("c0", 23), "v_c1_g01_c01": ("c1", 16),
          "v_c2_g01_c01": ("c2", 60), "v_c3_g01_c01": ("c3", 30)}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from matconv_port.network import MatConvNetModel
    from matconv_port.serialization import save_converted
    from matconv_port.train.archs import demo

    tmp = tmp_path_factory.mktemp("dist")
    root = make_dataset(str(tmp / "data"), VIDEOS, CLASSES)
    model = str(tmp / "m.pt")
    save_converted(MatConvNetModel(demo(4, "rgb", classes=CLASSES, seed=1, image_size=(16, 16), widths=(4, 6, 8, 8))),
                   model)
    return tmp, root, model


def _args(root, model, out, *extra):
    return ["eval", "--model", model, "--data-root", root, "--out", str(out), "--no-progress", "--workers", "0", *extra]


def _one(root, model, out, *extra):
    r = CliRunner().invoke(main, _args(root, model, out, *extra))
    assert r.exit_code == 0, r.output
    return json.loads((out / "summary.json").read_text())


def _torchrun(root, model, out, n=2):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "--no-python",
           "matconv-port", *_args(root, model, out)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and "gloo" in r.stderr.lower() and "unavailable" in r.stderr.lower():
        pytest.skip("gloo backend unavailable here")
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def _same(a_dir, b_dir):
    a, b = np.load(a_dir / "scores.npz"), np.load(b_dir / "scores.npz")
    assert list(a["videos"]) == list(b["videos"])
    np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-5, atol=1e-6 * float(np.abs(a["scores"]).max()))
    assert (a["video_scores"].argmax(1) == b["video_scores"].argmax(1)).all()
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a_dir, b_dir))
    for k in ("top1", "top5", "mean_class_accuracy", "num_videos", "num_skipped", "protocol"):
        assert sa[k] == sb[k], k


def test_two_processes_resume_and_match_one_process(setup):
    tmp, root, model = setup
    one = _one(root, model, tmp / "one")
    assert one["world_size"] == 1 and one["num_videos"] == 5
    # a one-process run stopped after 2 videos, finished by two processes sharing the other 3
    part = tmp / "part"
    _one(root, model, part, "--max-videos", "2")
    two = _torchrun(root, model, part)
    assert two["world_size"] == 2 and two["videos_scored_this_run"] == 3 and two["num_videos"] == 5
    _same(tmp / "one", part)
    logs = shards.log_paths(str(part))
    assert [os.path.basename(p) for p in logs] == ["video_scores.jsonl", "video_scores.rank1.jsonl"]
    per_log = [[json.loads(x)["video"] for x in open(p) if '"video"' in x] for p in logs]
    assert sorted(per_log[0] + per_log[1]) == sorted(VIDEOS) and len(per_log[0]) == 2 + 2 and len(per_log[1]) == 1
    # process 1 lost its video mid-line: any number of processes picks it up again
    rank1 = part / "video_scores.rank1.jsonl"
    lines = rank1.read_text().splitlines(keepends=True)
    rank1.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    again = _one(root, model, part)
    assert again["videos_scored_this_run"] == 1 and again["world_size"] == 1
    assert rank1.read_text() == "".join(lines[:-1])  # the torn tail was cut
    _same(tmp / "one", part)


def test_share_and_log_paths(tmp_path):
    info = shards.DistInfo(1, 3)
    assert shards.share(list(range(8)), info) == [1, 4, 7]
    for name in ("video_scores.rank10.jsonl", "video_scores.rank2.jsonl", "video_scores.jsonl", "video_scores.rankx.jsonl"):
        (tmp_path / name).write_text("")
    assert [os.path.basename(p) for p in shards.log_paths(str(tmp_path))] == [
        "video_scores.jsonl", "video_scores.rank2.jsonl", "video_scores.rank10.jsonl"]
