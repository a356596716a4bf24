"""UCF101-format split lists: formats, group-wise splitting, determinism."""
from __future__ import annotations

import re

import pytest

from matconv_port.data.splits import (
    assign_test,
    read_class_ind,
    read_list,
    splits_from_classes,
    write_split_files,
)
from matconv_port.errors import DataError


def test_formats_match_the_official_files(tmp_path):
    write_split_files(tmp_path, ["ApplyEyeMakeup", "Archery"], {
        1: {"train": [("ApplyEyeMakeup", "v_ApplyEyeMakeup_g08_c01"), ("Archery", "v_Archery_g09_c02")],
            "test": [("ApplyEyeMakeup", "v_ApplyEyeMakeup_g01_c01")]},
    })
    assert (tmp_path / "classInd.txt").read_text() == "1 ApplyEyeMakeup\n2 Archery\n"
    assert (tmp_path / "trainlist01.txt").read_text() == (
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nArchery/v_Archery_g09_c02.avi 2\n")
    assert (tmp_path / "testlist01.txt").read_text() == "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n"
    assert read_class_ind(tmp_path / "classInd.txt") == ["ApplyEyeMakeup", "Archery"]
    assert read_list(tmp_path / "trainlist01.txt")[1] == ("Archery", "v_Archery_g09_c02", 2)
    assert read_list(tmp_path / "testlist01.txt") == [("ApplyEyeMakeup", "v_ApplyEyeMakeup_g01_c01", None)]


def test_groups_stay_together():
    names = [f"v_Jump_g{g:02d}_c{c:02d}" for g in range(1, 11) for c in range(1, 4)]
    test = assign_test(names, 0.3, seed=0, key="Jump")
    groups_test = {n[:-4] for n in test}
    groups_train = {n[:-4] for n in names if n not in test}
    assert len(groups_test) == 3 and not groups_test & groups_train
    assert len(test) == 9


def test_plain_names_fraction_and_determinism():
    names = [f"clip{i}" for i in range(20)]
    a = assign_test(names, 0.25, seed=1, key="x")
    assert len(a) == 5
    assert a == assign_test(list(reversed(names)), 0.25, seed=1, key="x")
    assert a != assign_test(names, 0.25, seed=2, key="x")  # the seed matters
    assert assign_test(["a", "b"], 0.01) and len(assign_test(["a", "b"], 0.99)) == 1
    assert assign_test(["a", "b", "c"], 0.0) == set()
    with pytest.raises(DataError):
        assign_test(names, 1.5)


def test_splits_from_classes_writes_consistent_lists(tmp_path):
    cv = {"b_cls": [f"b{i}" for i in range(10)], "a_cls": [f"a{i}" for i in range(4)], "empty": []}
    out = splits_from_classes(tmp_path, cv, test_fraction=0.5, seed=0)
    assert out["classes"] == ["a_cls", "b_cls"]
    train = read_list(tmp_path / "trainlist01.txt")
    test = read_list(tmp_path / "testlist01.txt")
    assert len(test) == 2 + 5 and len(train) == 2 + 5
    assert {v for _, v, _ in train}.isdisjoint({v for _, v, _ in test})
    assert all(lbl == (1 if c == "a_cls" else 2) for c, _, lbl in train)
    assert all(re.fullmatch(r"[ab]_cls/[ab]\d\.avi( [12])?", line) for line in
               (tmp_path / "trainlist01.txt").read_text().splitlines() + (tmp_path / "testlist01.txt").read_text().splitlines())


def test_white_space_in_names_is_refused(tmp_path):
    with pytest.raises(DataError, match="white space"):
        splits_from_classes(tmp_path, {"my class": ["v1", "v2"]})
