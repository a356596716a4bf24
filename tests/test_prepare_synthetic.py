"""The synthetic moving-shapes dataset: layout, splits, and that the class is the motion."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from matconv_port.data.splits import read_class_ind, read_list
from matconv_port.data.synthetic import class_directions, make_synthetic_dataset, split_test_groups
from matconv_port.errors import DataError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    t0 = time.process_time()  # CPU time of this process: robust to other load on the machine
    info = make_synthetic_dataset(str(root))
    info["_seconds"] = time.process_time() - t0
    return info


def _gray(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert img is not None, path
    return img.astype(int)


def test_defaults_are_small_and_fast(dataset):
    assert dataset["_seconds"] < 10
    assert dataset["classes"] == ["MoveUp", "MoveDown", "MoveSideways", "MoveUpDiagonal"]
    assert len(dataset["videos"]) == 4 * 12
    assert 24 <= dataset["frames"] <= 40


def test_layout_and_counts(dataset):
    root = Path(dataset["root"])
    h, w, n = dataset["height"], dataset["width"], dataset["frames"]
    for v in dataset["videos"]:
        name = v["name"]
        assert re.fullmatch(r"v_Move[A-Za-z]+_g\d\d_c\d\d", name)
        rgb = sorted(os.listdir(root / "jpegs_256" / name))
        assert rgb == [f"frame{k:06d}.jpg" for k in range(1, n + 1)]
        for axis in "uv":
            assert sorted(os.listdir(root / "tvl1_flow" / axis / name)) == [f"frame{k:06d}.jpg" for k in range(1, n)]
    first = dataset["videos"][0]["name"]
    assert cv2.imread(str(root / "jpegs_256" / first / "frame000001.jpg")).shape == (h, w, 3)


def test_the_class_is_the_motion(dataset):
    """Flow JPEGs: MoveUp has v < 128 where it moves and u = 128, MoveDown v > 128,
    MoveSideways u > 128 or u < 128 (mirrored at random) and v = 128, MoveUpDiagonal
    v < 128 and u != 128. Classes are mirror-invariant: both horizontal senses occur."""
    root = Path(dataset["root"])
    # class -> expected sign of (v - 128), and whether u moves
    expect = {"MoveUp": (-1, False), "MoveDown": (+1, False), "MoveSideways": (0, True), "MoveUpDiagonal": (-1, True)}
    senses: dict[str, set] = {}
    for v in dataset["videos"]:
        v_sign, u_moves = expect[v["class"]]
        for k in (1, 10, dataset["frames"] - 1):
            gu = _gray(root / "tvl1_flow" / "u" / v["name"] / f"frame{k:06d}.jpg")
            gv = _gray(root / "tvl1_flow" / "v" / v["name"] / f"frame{k:06d}.jpg")
            moving = (np.abs(gu - 128) > 4) | (np.abs(gv - 128) > 4)
            assert moving.mean() > 0.02, (v["name"], k)  # the shape covers part of the frame
            du, dv = np.median(gu[moving]) - 128, np.median(gv[moving]) - 128
            assert (abs(du) > 6) == u_moves, (v["name"], du)
            assert (v_sign == 0 and abs(dv) <= 4) or v_sign * dv > 6, (v["name"], dv)
            if u_moves:
                assert np.sign(du) == np.sign(v["velocity"][0])  # the sense the video was drawn with
                senses.setdefault(v["class"], set()).add(int(np.sign(du)))
            # the background (most of the frame) does not move
            assert np.median(gu) == 128 and np.median(gv) == 128
    assert senses["MoveSideways"] == {-1, 1} and senses["MoveUpDiagonal"] == {-1, 1}


def test_rgb_frames_show_the_moving_shape(dataset):
    root = Path(dataset["root"])
    v = next(x for x in dataset["videos"] if x["class"] == "MoveSideways")
    a = cv2.imread(str(root / "jpegs_256" / v["name"] / "frame000001.jpg")).astype(int)
    b = cv2.imread(str(root / "jpegs_256" / v["name"] / "frame000002.jpg")).astype(int)
    assert np.abs(a - b).max() > 40  # something moved
    assert (np.abs(a - b).max(axis=2) < 12).mean() > 0.6  # most of the frame is static background


def test_split_files(dataset):
    split_dir = Path(dataset["split_dir"])
    assert read_class_ind(split_dir / "classInd.txt") == dataset["classes"]
    labels = {v["name"]: v["label"] for v in dataset["videos"]}
    groups = {v["name"]: (v["class"], v["group"]) for v in dataset["videos"]}
    test_groups_seen = []
    for n in (1, 2, 3):
        train = read_list(split_dir / f"trainlist{n:02d}.txt")
        test = read_list(split_dir / f"testlist{n:02d}.txt")
        assert [v for _, v, _ in train] == dataset["splits"][n]["train"]
        assert [v for _, v, _ in test] == dataset["splits"][n]["test"]
        assert all(lbl == labels[v] for _, v, lbl in train)
        assert all(lbl is None for _, _, lbl in test)
        assert all(c == groups[v][0] for c, v, _ in train + test)
        tr_groups = {groups[v] for _, v, _ in train}
        te_groups = {groups[v] for _, v, _ in test}
        assert not tr_groups & te_groups  # groups split as UCF101 does
        assert len(train) + len(test) == len(dataset["videos"])
        assert 6 <= len(train) // 4 and len(test) // 4 >= 2
        test_groups_seen.append(te_groups)
    assert not (test_groups_seen[0] & test_groups_seen[1]) and not (test_groups_seen[1] & test_groups_seen[2])
    line = (split_dir / "trainlist01.txt").read_text().splitlines()[0]
    assert re.fullmatch(r"MoveUp/v_MoveUp_g\d\d_c\d\d\.avi 1", line)
    assert re.fullmatch(r"MoveUp/v_MoveUp_g\d\d_c\d\d\.avi", (split_dir / "testlist01.txt").read_text().splitlines()[0])


def test_deterministic_and_seed_dependent(tmp_path):
    a = make_synthetic_dataset(str(tmp_path / "a"), num_classes=2, videos_per_class=2, frames=4, seed=5)
    b = make_synthetic_dataset(str(tmp_path / "b"), num_classes=2, videos_per_class=2, frames=4, seed=5)
    c = make_synthetic_dataset(str(tmp_path / "c"), num_classes=2, videos_per_class=2, frames=4, seed=6)
    rel = "jpegs_256/v_MoveDown_g02_c01/frame000003.jpg"
    assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert (tmp_path / "a" / rel).read_bytes() != (tmp_path / "c" / rel).read_bytes()
    assert a["videos"] == b["videos"] and a["videos"] != c["videos"]


def test_real_size_and_real_flow_option(tmp_path):
    info = make_synthetic_dataset(str(tmp_path), num_classes=1, videos_per_class=2, frames=3, height=256, width=340, flow="dis")
    name = info["videos"][0]["name"]
    assert cv2.imread(str(tmp_path / "jpegs_256" / name / "frame000001.jpg")).shape == (256, 340, 3)
    v = _gray(tmp_path / "tvl1_flow" / "v" / name / "frame000001.jpg")
    assert np.percentile(v, 1) < 116  # DIS sees the upward motion (class 1, MoveUp)


def test_more_classes_and_bad_arguments(tmp_path):
    names = [c for c, _ in class_directions(12)]
    assert len(set(names)) == 12
    assert split_test_groups(6, 1) == {1, 2} and split_test_groups(6, 3) == {5, 6}
    assert split_test_groups(2, 2) == {2}
    for kwargs in ({"videos_per_class": 1}, {"frames": 1}, {"num_classes": 0}, {"flow": "brox"}):
        with pytest.raises(DataError):
            make_synthetic_dataset(str(tmp_path), **kwargs)
