"""Split lists in the official UCF101 or HMDB51 formats (read back by :mod:`eval.splits`).

UCF101 files (one entry per line, ``\\n`` line ends, as the copies in the original repository):

* ``classInd.txt``: ``<index> <ClassName>``, 1-based, e.g. ``1 ApplyEyeMakeup``;
* ``trainlist0N.txt``: ``<ClassName>/<video>.avi <index>``, e.g.
  ``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1``;
* ``testlist0N.txt``: ``<ClassName>/<video>.avi`` (no label).

The original reader (``cnn_ucf101_setup_data.m``) drops the last four characters of an
entry and appends ``.avi``; the video is the frame-folder name. Entries are therefore
always written as ``<video>.avi`` whatever the source container was. Names must not
contain white space (entries are split at spaces).

HMDB51 files (``--split-format hmdb51``; no class index file: the reader numbers the
classes in sorted order, or in the official order when they are exactly HMDB51's 51):

* ``<class>_test_split<N>.txt`` for every class and split ``N``: ``<video>.avi <flag>``
  per line, flag ``1`` = train, ``2`` = test (``0`` = unused, which we never write).

Splits ``1..num_splits`` (3 by default, as both data sets) take each ``test_fraction`` of a
class; split 1 is the choice of :func:`assign_test`, and later splits prefer units not yet
used for testing (so with ``test_fraction <= 1/3`` the three test sets are disjoint, like
UCF101's official splits by group).

UCF101 splits by GROUP: clips ``v_<Class>_g<GG>_c<CC>`` of the same group (same actor
and scene) are all in train or all in test. :func:`assign_test` does the same when every
name of a class follows that pattern, and splits single videos otherwise.
"""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from matconv_port.data.writers import atomic_write_bytes
from matconv_port.errors import DataError

UCF_NAME = re.compile(r"^v_(?P<cls>.+)_g(?P<group>\d+)_c(?P<clip>\d+)$")

#: ``--split-format`` values.
SPLIT_FORMATS: tuple[str, ...] = ("ucf101", "hmdb51")
#: Split numbers the readers accept (``eval.splits.read_split``).
MAX_SPLITS = 3


def check_split_options(split_format: str, num_splits: int) -> None:
    """Refuse an unknown ``--split-format`` or a split count the readers cannot read."""
    if split_format not in SPLIT_FORMATS:
        raise DataError(f"--split-format {split_format!r}: choose one of {', '.join(SPLIT_FORMATS)}")
    if not 1 <= int(num_splits) <= MAX_SPLITS:
        raise DataError(f"{num_splits} splits: the split readers take splits 1..{MAX_SPLITS}")


def _round_half_away(x: float) -> int:
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


def _check_name(kind: str, name: str) -> None:
    if not name or any(ch.isspace() for ch in name) or "/" in name:
        raise DataError(f"{kind} name {name!r} cannot be written to a UCF101 split list (white space or '/')")


def assign_test(videos: Sequence[str], test_fraction: float, seed: int = 0, key: str = "") -> set[str]:
    """Choose the test videos of ONE class, deterministically.

    Units are UCF101 groups when every name matches ``v_<Class>_g<GG>_c<CC>``, single
    videos otherwise. ``round(test_fraction * units)`` units (half away from zero) go to
    test, at least one and leaving at least one for training when there are two or more
    units and ``0 < test_fraction < 1``. The choice depends only on the sorted names,
    ``seed`` and ``key`` (the class name).
    """
    return assign_test_splits(videos, test_fraction, 1, seed, key)[0]


def _units(videos: Sequence[str]) -> dict[str, list[str]]:
    names = sorted(set(videos))
    matches = [UCF_NAME.match(n) for n in names]
    if names and all(matches):
        units: dict[str, list[str]] = {}
        for n, m in zip(names, matches):
            units.setdefault(f"g{int(m.group('group')):04d}", []).append(n)
    else:
        units = {n: [n] for n in names}
    return units


def assign_test_splits(videos: Sequence[str], test_fraction: float, num_splits: int = 3, seed: int = 0,
                       key: str = "") -> list[set[str]]:
    """The test videos of ONE class for splits ``1..num_splits`` (see :func:`assign_test`
    for units and counts). Split 1 is :func:`assign_test`'s choice; split ``N > 1`` draws
    (seeded by ``seed``, ``key``, ``N``) first from units not in an earlier test set, then,
    when too few are left, from the others."""
    if not 0.0 <= test_fraction <= 1.0:
        raise DataError(f"test fraction {test_fraction} is not between 0 and 1")
    units = _units(videos)
    keys = sorted(units)
    n_test = _round_half_away(test_fraction * len(keys))
    if 0.0 < test_fraction < 1.0 and len(keys) >= 2:
        n_test = min(max(n_test, 1), len(keys) - 1)
    rng = random.Random(f"{seed}:{key}")
    chosen = rng.sample(keys, n_test) if n_test else []
    out = [{n for k in chosen for n in units[k]}]
    used = set(chosen)
    for split in range(2, int(num_splits) + 1):
        rng = random.Random(f"{seed}:{key}:split{split}")
        fresh = [k for k in keys if k not in used]
        if len(fresh) >= n_test:
            chosen = rng.sample(fresh, n_test)
        else:
            chosen = fresh + rng.sample([k for k in keys if k in used], n_test - len(fresh))
        used.update(chosen)
        out.append({n for k in chosen for n in units[k]})
    return out


def format_class_ind(classes: Sequence[str]) -> str:
    """``classInd.txt`` content for ``classes`` (label = position + 1)."""
    for c in classes:
        _check_name("class", c)
    return "".join(f"{i} {c}\n" for i, c in enumerate(classes, start=1))


def format_list(entries: Iterable[tuple[str, str]], classes: Sequence[str], with_label: bool) -> str:
    """A train list (``with_label``) or a test list from ``(class, video)`` pairs."""
    index = {c: i for i, c in enumerate(classes, start=1)}
    lines = []
    for cls, video in entries:
        _check_name("video", video)
        if cls not in index:
            raise DataError(f"video {video}: class {cls!r} is not in classInd")
        entry = f"{cls}/{video}.avi"
        lines.append(f"{entry} {index[cls]}\n" if with_label else f"{entry}\n")
    return "".join(lines)


def write_split_files(
    split_dir: str | Path,
    classes: Sequence[str],
    splits: Mapping[int, Mapping[str, Sequence[tuple[str, str]]]],
) -> list[Path]:
    """Write ``classInd.txt`` and, for every split number N, ``trainlist0N.txt`` and
    ``testlist0N.txt`` (``splits[N] = {"train": [(class, video)...], "test": [...]}``),
    atomically. Returns the paths written."""
    folder = Path(split_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "classInd.txt"]
    atomic_write_bytes(written[0], format_class_ind(classes).encode())
    for n, parts in sorted(splits.items()):
        for part, with_label in (("train", True), ("test", False)):
            path = folder / f"{part}list{int(n):02d}.txt"
            atomic_write_bytes(path, format_list(parts.get(part, ()), classes, with_label).encode())
            written.append(path)
    return written


def write_hmdb51_split_files(
    split_dir: str | Path,
    classes: Sequence[str],
    splits: Mapping[int, Mapping[str, Sequence[tuple[str, str]]]],
) -> list[Path]:
    """Write ``<class>_test_split<N>.txt`` for every class and split (same ``splits`` as
    :func:`write_split_files`): ``<video>.avi 1`` (train) / ``<video>.avi 2`` (test) lines,
    in video-name order, atomically. Returns the paths written."""
    folder = Path(split_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for c in classes:
        _check_name("class", c)
    for n, parts in sorted(splits.items()):
        flags: dict[str, dict[str, str]] = {c: {} for c in classes}
        for part, flag in (("train", "1"), ("test", "2")):
            for cls, video in parts.get(part, ()):
                _check_name("video", video)
                if cls not in flags:
                    raise DataError(f"video {video}: class {cls!r} is not among the classes")
                flags[cls][video] = flag
        for cls in classes:
            path = folder / f"{cls}_test_split{int(n)}.txt"
            text = "".join(f"{v}.avi {flags[cls][v]}\n" for v in sorted(flags[cls]))
            atomic_write_bytes(path, text.encode())
            written.append(path)
    return written


def splits_from_classes(
    split_dir: str | Path,
    class_videos: Mapping[str, Sequence[str]],
    test_fraction: float = 0.3,
    seed: int = 0,
    split_format: str = "ucf101",
    num_splits: int = 3,
) -> dict[str, object]:
    """Build splits ``1..num_splits`` from ``{class: [video, ...]}`` and write them to
    ``split_dir`` in ``split_format`` (``ucf101``: classInd + train/test lists; ``hmdb51``:
    ``<class>_test_splitN.txt``).

    Classes are numbered in sorted order; within each class :func:`assign_test_splits`
    picks the test videos. Returns ``{"classes": [...], "train": [(class, video)...],
    "test": [...]`` (split 1), ``"splits": {N: {"train": ..., "test": ...}}, "files": [...]}``.
    """
    check_split_options(split_format, num_splits)
    classes = sorted(c for c, v in class_videos.items() if v)
    if not classes:
        raise DataError(f"{split_dir}: no classes with videos to write split lists for")
    splits: dict[int, dict[str, list[tuple[str, str]]]] = {n: {"train": [], "test": []} for n in range(1, num_splits + 1)}
    for cls in classes:
        videos = sorted(set(class_videos[cls]))
        for n, chosen in enumerate(assign_test_splits(videos, test_fraction, num_splits, seed, key=cls), start=1):
            splits[n]["train"] += [(cls, v) for v in videos if v not in chosen]
            splits[n]["test"] += [(cls, v) for v in videos if v in chosen]
    writer = write_split_files if split_format == "ucf101" else write_hmdb51_split_files
    files = writer(split_dir, classes, splits)
    return {"classes": classes, "train": splits[1]["train"], "test": splits[1]["test"], "splits": splits, "files": files}


def read_class_ind(path: str | Path) -> list[str]:
    """Class names from a ``classInd.txt`` (in label order)."""
    path = Path(path)
    try:
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise DataError(f"{path}: no such split file") from None
    try:
        pairs = sorted((int(r[0]), r[1]) for r in rows)
    except (ValueError, IndexError):
        raise DataError(f"{path}: not a classInd file ('<index> <class>' per line)") from None
    return [name for _, name in pairs]


def read_list(path: str | Path) -> list[tuple[str, str, int | None]]:
    """Entries of a train/test list as ``(class, video, label or None)``; ``video`` without extension."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"{path}: no such split file") from None
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if "/" not in parts[0]:
            raise DataError(f"{path}:{i}: entry {parts[0]!r} is not '<class>/<video>.avi'")
        cls, file = parts[0].split("/", 1)
        label = int(parts[1]) if len(parts) > 1 else None
        out.append((cls, file[:-4] if len(file) > 4 else file, label))
    return out
