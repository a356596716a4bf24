"""Split lists read as the original ``cnn_ucf101_setup_data.m`` reads them (hand-made
lists in the official formats)."""
from __future__ import annotations

import os

import pytest

from matconv_port.errors import DataError
from matconv_port.eval.splits import HMDB51_CLASSES, count_frames, read_split


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_ucf101_labels_and_order(tmp_path):
    d = str(tmp_path)
    _write(f"{d}/classInd.txt", "1 Archery\n2 Basketball\n3 Biking\n")
    # file order mixes classes; the original groups test videos by class (label order)
    _write(f"{d}/testlist01.txt", "Biking/v_Biking_g01_c01.avi\nArchery/v_Archery_g01_c02.avi\n"
                                  "Biking/v_Biking_g01_c03.avi\nArchery/v_Archery_g01_c01.avi\n")
    _write(f"{d}/trainlist01.txt", "Basketball/v_Basketball_g08_c01.avi 2\n")
    s = read_split("ucf101", d, 1)
    assert s.classes == ("Archery", "Basketball", "Biking")
    assert [(v.name, v.label) for v in s.test] == [("v_Archery_g01_c02", 1), ("v_Archery_g01_c01", 1),
                                                   ("v_Biking_g01_c01", 3), ("v_Biking_g01_c03", 3)]
    assert [(v.name, v.label) for v in s.train] == [("v_Basketball_g08_c01", 2)]


def test_ucf101_errors_name_the_file(tmp_path):
    d = str(tmp_path)
    _write(f"{d}/classInd.txt", "1 Archery\n")
    _write(f"{d}/testlist01.txt", "Rowing/v_Rowing_g01_c01.avi\n")
    _write(f"{d}/trainlist01.txt", "")
    with pytest.raises(DataError, match=r"testlist01\.txt:1: class 'Rowing'"):
        read_split("ucf101", d, 1)
    with pytest.raises(DataError, match=r"(train|test)list02\.txt: split file not found"):
        read_split("ucf101", d, 2)


def test_hmdb51_flags_and_class_order(tmp_path):
    d = str(tmp_path)
    for k, c in enumerate(HMDB51_CLASSES):
        _write(f"{d}/{c}_test_split1.txt", f"{c}_a.avi 1 \n{c}_b.avi 2 \n{c}_c.avi 0 \n")
    s = read_split("hmdb51", d, 1)
    assert len(s.classes) == 51 and len(s.test) == 51 and len(s.train) == 51
    # the original's fixed order: sword_exercise (45) before sword (46), not alphabetical
    assert s.classes[44:46] == ("sword_exercise", "sword")
    assert s.test[45].name == "sword_b" and s.test[45].label == 46
    assert all(not v.name.endswith("_c") for v in s.test + s.train)  # flag 0 = unused


def test_hmdb51_other_classes_sorted(tmp_path):
    d = str(tmp_path)
    _write(f"{d}/zeta_test_split2.txt", "z1.avi 2\n")
    _write(f"{d}/alpha_test_split2.txt", "a1.avi 2\nbad line\n")
    with pytest.raises(DataError, match=r"alpha_test_split2\.txt:2"):
        read_split("hmdb51", d, 2)


def test_count_frames(tmp_path):
    d = tmp_path / "jpegs_256" / "v_x"
    d.mkdir(parents=True)
    for i in range(1, 8):
        (d / f"frame{i:06d}.jpg").write_bytes(b"")
    (d / "notes.txt").write_text("")
    assert count_frames(str(tmp_path), "v_x") == 7
    with pytest.raises(DataError, match="v_missing"):
        count_frames(str(tmp_path), "v_missing")
