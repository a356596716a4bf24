"""Protocols and datasets are data: registering one entry makes it a CLI choice that
runs end to end (here through ``--plan-only``), with nothing else to change."""
from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from matconv_port.cli import main
from matconv_port.eval.datasets import DATASETS, DatasetSpec, register_dataset
from matconv_port.eval.plan import CROP_LAYOUTS, PROTOCOLS, Protocol, crop_boxes, register_protocol
from matconv_port.eval.splits import Split, Video
from test_eval_support import make_dataset

VIDEOS = {"v_c0_g01_c01": ("c0", 40), "v_c1_g01_c01": ("c1", 70)}


def _read_tiny(splits_dir: str, split: int) -> Split:
    """A made-up list format: one '<video> <label>' line per test video in tiny_split<N>.txt."""
    classes = ("c0", "c1")
    test = []
    with open(os.path.join(splits_dir, f"tiny_split{split}.txt")) as f:
        for line in f.read().split("\n"):
            if line.strip():
                name, label = line.split()
                test.append(Video(name, int(label), classes[int(label) - 1]))
    return Split("tiny", split, classes, (), tuple(test))


@pytest.fixture()
def registries():
    saved_p, saved_d, saved_c = dict(PROTOCOLS), dict(DATASETS), dict(CROP_LAYOUTS)
    yield
    for reg, saved in ((PROTOCOLS, saved_p), (DATASETS, saved_d), (CROP_LAYOUTS, saved_c)):
        reg.clear()
        reg.update(saved)


def test_register_dataset_and_protocol_then_plan_only(registries, tmp_path):
    root = make_dataset(str(tmp_path / "d"), VIDEOS, ["c0", "c1"])
    with open(os.path.join(root, "splits", "tiny_split2.txt"), "w") as f:
        f.write("v_c1_g01_c01 2\nv_c0_g01_c01 1\n")
    register_dataset(DatasetSpec("tiny", _read_tiny, splits=(2,), split_files="tiny_splitN.txt"))
    CROP_LAYOUTS[4] = (("top", "left"), ("bottom", "right"))
    register_protocol(Protocol("fusion-stride10", "fused", 30, 3, "consecutive", 0, "30 samples at stride 10",
                               streams=("fused",), stride=10))
    register_protocol(Protocol("corners4", "single", 5, 1, "none", 4, "5 frames, two corner crops + flip",
                               streams=("flow",), batch_clips=4))
    out = tmp_path / "plan.jsonl"
    base = ["eval", "--dataset", "tiny", "--split", "2", "--data-root", root, "--plan-only", str(out)]
    r = CliRunner().invoke(main, base + ["--protocol", "fusion-stride10"])
    assert r.exit_code == 0, r.output
    plans = [json.loads(x) for x in open(out)]
    assert [p["video"] for p in plans] == ["v_c1_g01_c01", "v_c0_g01_c01"]
    clips = plans[0]["clips"]
    assert len(clips) == 20 and clips[0]["frames"] == [6, 16, 26] and clips[0]["flip"] is False and clips[1]["flip"]
    r = CliRunner().invoke(main, base + ["--protocol", "corners4", "--stream", "flow"])
    assert r.exit_code == 0, r.output
    clips = [json.loads(x) for x in open(out)][1]["clips"]
    assert len(clips) == 5 * 4
    assert [c["crop"] for c in clips[:4]] == [[0, 0, 224, 224], [0, 0, 224, 224], [116, 32, 224, 224], [116, 32, 224, 224]]
    r = CliRunner().invoke(main, base + ["--protocol", "corners4", "--stream", "rgb"])
    assert r.exit_code == 2 and "flow only" in r.output
    r = CliRunner().invoke(main, ["eval", "--dataset", "tiny", "--split", "1", "--data-root", root,
                                  "--plan-only", str(out), "--protocol", "fusion-stride10"])
    assert r.exit_code == 2 and "tiny has splits 2" in r.output


def test_registry_refuses_bad_entries(registries):
    with pytest.raises(ValueError, match="registered already"):
        register_protocol(PROTOCOLS["dense25"])
    with pytest.raises(ValueError, match="crop layout"):
        register_protocol(Protocol("crops7", "single", 25, 1, "none", 7, "?"))
    with pytest.raises(ValueError, match="stride"):
        register_protocol(Protocol("fused-nostride", "fused", 50, 5, "strided", 0, "?", streams=("fused",)))
    with pytest.raises(ValueError, match="registered already"):
        register_dataset(DatasetSpec("ucf101", _read_tiny))


def test_crop_layout_table_gives_the_original_boxes():
    # the original's corners (y outer) then the centre, for the stored 256 x 340 frames
    assert crop_boxes(10, 256, 340) == [(0, 0, 224, 224), (116, 0, 224, 224), (0, 32, 224, 224),
                                        (116, 32, 224, 224), (58, 16, 224, 224)]
    assert [p.crops for p in PROTOCOLS.values() if p.crops] == [10, 6, 2]
    assert PROTOCOLS["fusion-paper"].stride == 15 and PROTOCOLS["crops2"].streams == ("rgb",)
