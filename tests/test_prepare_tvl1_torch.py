"""`prepare --flow tvl1-torch`: batched output, devices, GPU out-of-memory, split lists 1-3 in both formats."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from eval.splits import read_split
from matconv_port.cli import main
from matconv_port.data import prepare as prep
from matconv_port.data.example_videos import write_moving_square_video
from matconv_port.data.splits import assign_test_splits, splits_from_classes
from matconv_port.data.tvl1_torch import TVL1Torch
from matconv_port.data.writers import flow_frame_path
from matconv_port.errors import DataError


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _flow_bytes(root, video, n):
    return [flow_frame_path(root, axis, video, k).read_bytes() for axis in ("u", "v") for k in range(1, n + 1)]


def test_batches_do_not_change_the_output(tmp_path):
    src = write_moving_square_video(tmp_path / "v" / "a.avi", velocity=(2.0, 1.0), frames=4)
    one = prep.prepare_video(src, tmp_path / "one", flow="tvl1-torch", short_side=48, batch_pairs=1)
    two = prep.prepare_video(src, tmp_path / "two", flow="tvl1-torch", short_side=48, batch_pairs=2)
    auto = prep.prepare_video(src, tmp_path / "auto", flow="tvl1-torch", short_side=48)  # CPU default: 8 > 3 pairs
    assert one.status == two.status == auto.status == "done" and one.frames == 4
    ref = _flow_bytes(tmp_path / "one", "a", 3)
    assert _flow_bytes(tmp_path / "two", "a", 3) == ref == _flow_bytes(tmp_path / "auto", "a", 3)
    assert not flow_frame_path(tmp_path / "two", "u", "a", 4).exists()
    u = np.asarray(__import__("cv2").imread(str(flow_frame_path(tmp_path / "one", "u", "a", 1)), 0), float)
    assert u.max() >= 130  # the square moves right by 2 * 48/240 px: 128 + 0.4 * 255/40 = 130.5


def test_auto_batch_pairs_on_cpu_and_cuda(monkeypatch):
    assert prep.auto_batch_pairs("cpu", 256, 340) == prep.CPU_BATCH_PAIRS
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10 * 2**30, 80 * 2**30))
    k = prep.auto_batch_pairs("cuda:0", 256, 340)
    assert k == int(0.4 * 10 * 2**30 // (prep.BYTES_PER_PAIR_PIXEL * 256 * 340))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1, 80 * 2**30))
    assert prep.auto_batch_pairs("cuda:0", 256, 340) == 1


def test_gpu_out_of_memory_names_batch_pairs(tmp_path, monkeypatch):
    write_moving_square_video(tmp_path / "v" / "a.avi", frames=4)
    write_moving_square_video(tmp_path / "v" / "b.avi", frames=4)

    def oom(self, prev, nxt):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(TVL1Torch, "pairs", oom)
    r = CliRunner().invoke(main, ["prepare", str(tmp_path / "v"), "--out", str(tmp_path / "d"), "--flow", "tvl1-torch",
                                  "--batch-pairs", "3", "--short-side", "32", "--no-progress"])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--batch-pairs" in lines[0] and "Traceback" not in r.output
    assert not (tmp_path / "d" / "jpegs_256" / "a").exists()  # nothing half-written


def test_device_refusals(tmp_path):
    write_moving_square_video(tmp_path / "v" / "a.avi", frames=3)
    runner = CliRunner()
    base = ["prepare", str(tmp_path / "v"), "--out", str(tmp_path / "d"), "--no-progress"]
    if not torch.cuda.is_available():
        r = runner.invoke(main, base + ["--flow", "tvl1-torch", "--device", "cuda"])
        assert r.exit_code == 2 and "--device cuda" in r.output and "Traceback" not in r.output
    r = runner.invoke(main, base + ["--flow", "tvl1-torch", "--device", "tpu"])
    assert r.exit_code == 2 and "--device tpu" in r.output
    r = runner.invoke(main, base + ["--flow", "dis", "--batch-pairs", "4"])
    assert r.exit_code == 2 and "--batch-pairs" in r.output
    assert not (tmp_path / "d").exists()


def test_flow_devices(monkeypatch):
    assert prep.flow_devices("tvl1", "cuda", 4) == ["cpu"]  # OpenCV methods ignore --device
    assert prep.flow_devices("tvl1-torch", "cpu", 3) == ["cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert prep.flow_devices("tvl1-torch", "cuda", 3) == ["cuda:0", "cuda:1", "cuda:0"]
    assert prep.flow_devices("tvl1-torch", "cuda:1", 3) == ["cuda:1"]


def test_torchrun_takes_every_nth_video(tmp_path, monkeypatch):
    for name in ("a", "b", "c"):
        write_moving_square_video(tmp_path / "v" / f"{name}.avi", frames=2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    s = prep.prepare_videos(tmp_path / "v", tmp_path / "d", flow="dis", short_side=32, progress=False)
    assert [r.video for r in s.results] == ["b"]


@pytest.mark.parametrize("fmt", ["ucf101", "hmdb51"])
def test_three_splits_round_trip_through_the_reader(tmp_path, fmt):
    cv = {"Jump": [f"v_Jump_g{g:02d}_c{c:02d}" for g in range(1, 10) for c in (1, 2)],
          "Run": [f"run_{i}" for i in range(7)]}
    out = splits_from_classes(tmp_path, cv, test_fraction=0.3, seed=0, split_format=fmt)
    names = sorted(os.listdir(tmp_path))
    if fmt == "ucf101":
        assert set(names) == {"classInd.txt"} | {f"{p}list0{n}.txt" for n in (1, 2, 3) for p in ("train", "test")}
    else:
        assert set(names) == {f"{c}_test_split{n}.txt" for c in ("Jump", "Run") for n in (1, 2, 3)}
        assert (tmp_path / "Run_test_split1.txt").read_text().splitlines()[0] in ("run_0.avi 1", "run_0.avi 2")
    tests = []
    for n in (1, 2, 3):
        split = read_split(fmt, str(tmp_path), n)
        assert split.classes == ("Jump", "Run")
        want = out["splits"][n]
        assert sorted((v.class_name, v.name) for v in split.train) == sorted(want["train"])
        assert sorted((v.class_name, v.name) for v in split.test) == sorted(want["test"])
        assert all(v.label == (1 if v.class_name == "Jump" else 2) for v in split.train + split.test)
        assert len(split.train) + len(split.test) == 25
        tests.append({v.name for v in split.test})
    assert out["test"] == out["splits"][1]["test"]
    # 0.3 of 9 groups = 3 groups per split: three disjoint test sets (like UCF101's official splits)
    jump = [{n for n in t if n.startswith("v_Jump")} for t in tests]
    assert all(len(j) == 6 for j in jump) and not (jump[0] & jump[1] or jump[0] & jump[2] or jump[1] & jump[2])


def test_split_one_is_unchanged_and_bad_options():
    names = [f"clip{i}" for i in range(10)]
    from matconv_port.data.splits import assign_test

    sets = assign_test_splits(names, 0.5, 3, seed=4, key="k")
    assert sets[0] == assign_test(names, 0.5, seed=4, key="k") and len(sets) == 3
    assert sets[1] == set(names) - sets[0]  # the other half, then a mix
    with pytest.raises(DataError, match="split-format"):
        splits_from_classes("/nonexistent", {"a": ["x"]}, split_format="kinetics")
    with pytest.raises(DataError, match="splits"):
        splits_from_classes("/nonexistent", {"a": ["x"]}, num_splits=4)


def test_cli_hmdb51_splits(tmp_path):
    for cls in ("wave", "clap"):
        for i in range(2):
            write_moving_square_video(tmp_path / "v" / cls / f"{cls}_{i}.avi", frames=2)
    r = CliRunner().invoke(main, ["prepare", str(tmp_path / "v"), "--out", str(tmp_path / "d"), "--flow", "dis",
                                  "--short-side", "32", "--classes-from-dirs", "--split-format", "hmdb51", "--no-progress"])
    assert r.exit_code == 0, r.output
    split = read_split("hmdb51", str(tmp_path / "d" / "splits"), 3)
    assert split.classes == ("clap", "wave") and len(split.train) == 2 and len(split.test) == 2


def test_cli_tvl1_torch_on_cpu_with_progress(tmp_path):
    write_moving_square_video(tmp_path / "v" / "a.avi", frames=3)
    r = CliRunner().invoke(main, ["prepare", str(tmp_path / "v"), "--out", str(tmp_path / "d"), "--flow", "tvl1-torch",
                                  "--device", "cpu", "--batch-pairs", "2", "--short-side", "32"])
    assert r.exit_code == 0, r.output
    assert "prepared 1 video(s)" in r.output and "frames/s" in r.output and "video" in r.output
    marker = (tmp_path / "d" / ".prepare_done" / "a.json").read_text()
    assert '"flow": "tvl1-torch"' in marker and '"frames": 3' in marker
    assert flow_frame_path(tmp_path / "d", "v", "a", 2).is_file()
