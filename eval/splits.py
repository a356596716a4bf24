"""Dataset splits in the official list formats, read as the original code reads them.

UCF101 (``cnn_ucf101_setup_data.m``, ``get_ucf101_split``):

* ``classInd.txt``: lines ``<index> <ClassName>``; the class of 1-based label ``k`` is
  the ``k``-th line's name (the original takes every second whitespace token).
* ``trainlist0N.txt`` (``<Class>/<video>.avi <label>``) and ``testlist0N.txt``
  (``<Class>/<video>.avi``). The label comes from the class folder name, looked up
  in ``classInd.txt``. Videos are grouped by class (label order) and keep file
  order within a class, as ``horzcat(Testing_set{:})`` orders them.

HMDB51 (``get_hmdb51_split``): one file ``<class>_test_splitN.txt`` per class with
lines ``<video>.avi <flag>``, flag 1 = train, 2 = test, 0 = unused. Labels follow the
original's fixed class list (not alphabetical: ``sword_exercise`` precedes
``sword``); a splits folder with other classes is read in sorted file order.

Video names are the file names without ``.avi`` (``v_ApplyEyeMakeup_g01_c01``), the
folder names under ``jpegs_256/`` and ``tvl1_flow/u|v/``. Labels are 1-based.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from matconv_port.data.frames import rgb_dir
from matconv_port.errors import DataError

__all__ = ["Video", "Split", "read_split", "read_ucf101_split", "read_hmdb51_split", "count_frames", "HMDB51_CLASSES"]

# The class order of the original get_hmdb51_split (a fact about the data set's
# labelling used by the released models).
HMDB51_CLASSES: tuple[str, ...] = (
    "brush_hair", "cartwheel", "catch", "chew", "clap", "climb", "climb_stairs",
    "dive", "draw_sword", "dribble", "drink", "eat", "fall_floor", "fencing",
    "flic_flac", "golf", "handstand", "hit", "hug", "jump", "kick_ball",
    "kick", "kiss", "laugh", "pick", "pour", "pullup", "punch",
    "push", "pushup", "ride_bike", "ride_horse", "run", "shake_hands", "shoot_ball",
    "shoot_bow", "shoot_gun", "sit", "situp", "smile", "smoke", "somersault",
    "stand", "swing_baseball", "sword_exercise", "sword", "talk", "throw", "turn",
    "walk", "wave",
)


@dataclass(frozen=True)
class Video:
    """One video of a split: ``name`` (no ``.avi``), 1-based ``label``, ``class_name``."""

    name: str
    label: int
    class_name: str


@dataclass(frozen=True)
class Split:
    """Classes (index ``k-1`` holds label ``k``) and the train and test videos."""

    dataset: str
    number: int
    classes: tuple[str, ...]
    train: tuple[Video, ...]
    test: tuple[Video, ...]


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return [ln.strip() for ln in f.read().splitlines() if ln.strip()]
    except FileNotFoundError:
        raise DataError(f"{path}: split file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read split file ({exc.strerror})") from None


def _strip_avi(name: str) -> str:
    return name[:-4] if name.lower().endswith(".avi") else name


def read_ucf101_split(splits_dir: str, split: int) -> Split:
    """Read UCF101 split ``split`` (1..3) from ``classInd.txt``/``trainlist0N``/``testlist0N``."""
    ind_path = os.path.join(splits_dir, "classInd.txt")
    tokens = " ".join(_read_lines(ind_path)).split()
    classes = tuple(tokens[1::2])
    if not classes:
        raise DataError(f"{ind_path}: no classes listed")
    index = {c: i for i, c in enumerate(classes)}

    def read_list(kind: str) -> tuple[Video, ...]:
        path = os.path.join(splits_dir, f"{kind}list0{split}.txt")
        per_class: list[list[Video]] = [[] for _ in classes]
        for lineno, line in enumerate(_read_lines(path), 1):
            entry = line.split()[0]
            if "/" not in entry:
                raise DataError(f"{path}:{lineno}: expected '<Class>/<video>.avi', got {entry!r}")
            cls, vid = entry.split("/", 1)
            if cls not in index:
                raise DataError(f"{path}:{lineno}: class {cls!r} is not in {ind_path}")
            k = index[cls]
            per_class[k].append(Video(_strip_avi(vid), k + 1, cls))
        return tuple(v for vids in per_class for v in vids)

    return Split("ucf101", split, classes, read_list("train"), read_list("test"))


def read_hmdb51_split(splits_dir: str, split: int) -> Split:
    """Read HMDB51 split ``split`` from the ``<class>_test_splitN.txt`` files."""
    pat = re.compile(rf"^(.+)_test_split{split}\.txt$")
    try:
        found = sorted(m.group(1) for f in os.listdir(splits_dir) if (m := pat.match(f)))
    except FileNotFoundError:
        raise DataError(f"{splits_dir}: splits folder not found") from None
    if not found:
        raise DataError(f"{splits_dir}: no '<class>_test_split{split}.txt' files")
    classes = HMDB51_CLASSES if set(found) == set(HMDB51_CLASSES) else tuple(found)
    train: list[Video] = []
    test: list[Video] = []
    for k, cls in enumerate(classes):
        path = os.path.join(splits_dir, f"{cls}_test_split{split}.txt")
        for lineno, line in enumerate(_read_lines(path), 1):
            parts = line.split()
            if len(parts) < 2 or parts[1] not in ("0", "1", "2"):
                raise DataError(f"{path}:{lineno}: expected '<video>.avi <0|1|2>', got {line!r}")
            v = Video(_strip_avi(parts[0]), k + 1, cls)
            if parts[1] == "1":
                train.append(v)
            elif parts[1] == "2":
                test.append(v)
    return Split("hmdb51", split, classes, tuple(train), tuple(test))


def read_split(dataset: str, splits_dir: str, split: int) -> Split:
    """Read split ``split`` of ``dataset`` (a name in
    :data:`~matconv_port.eval.datasets.DATASETS`) from ``splits_dir``."""
    from matconv_port.eval.datasets import get_dataset

    spec = get_dataset(dataset)
    if split not in spec.splits:
        raise DataError(f"split {split}: {dataset} has splits {', '.join(str(s) for s in spec.splits)}")
    return spec.read(splits_dir, split)


def count_frames(data_root: str, video: str) -> int:
    """Number of RGB frames of ``video``: the ``*.jpg`` files in ``jpegs_256/<video>/``.

    This is the original's ``imdb.images.nFrames`` (``dir(fullfile(imageDir, vid, '*.jpg'))``).
    Raises :class:`DataError` if the folder is missing.
    """
    folder = rgb_dir(data_root, video)
    try:
        with os.scandir(folder) as it:
            return sum(1 for e in it if e.name.endswith(".jpg"))
    except FileNotFoundError:
        raise DataError(f"{folder}: frame folder of video {video} not found") from None
    except NotADirectoryError:
        raise DataError(f"{folder}: not a folder (video {video})") from None
