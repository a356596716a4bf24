"""Split lists in the official UCF101 format.

Files (one entry per line, ``\\n`` line ends, as the copies in the original repository):

* ``classInd.txt``: ``<index> <ClassName>``, 1-based, e.g. ``1 ApplyEyeMakeup``;
* ``trainlist0N.txt``: ``<ClassName>/<video>.avi <index>``, e.g.
  ``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1``;
* ``testlist0N.txt``: ``<ClassName>/<video>.avi`` (no label).

The original reader (``cnn_ucf101_setup_data.m``) drops the last four characters of an
entry and appends ``.avi``; the video is the frame-folder name. Entries are therefore
always written as ``<video>.avi`` whatever the source container was. Names must not
contain white space (entries are split at spaces).

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
    if not 0.0 <= test_fraction <= 1.0:
        raise DataError(f"test fraction {test_fraction} is not between 0 and 1")
    names = sorted(set(videos))
    matches = [UCF_NAME.match(n) for n in names]
    if names and all(matches):
        units: dict[str, list[str]] = {}
        for n, m in zip(names, matches):
            units.setdefault(f"g{int(m.group('group')):04d}", []).append(n)
    else:
        units = {n: [n] for n in names}
    keys = sorted(units)
    n_test = _round_half_away(test_fraction * len(keys))
    if 0.0 < test_fraction < 1.0 and len(keys) >= 2:
        n_test = min(max(n_test, 1), len(keys) - 1)
    rng = random.Random(f"{seed}:{key}")
    chosen = rng.sample(keys, n_test) if n_test else []
    return {n for k in chosen for n in units[k]}


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


def splits_from_classes(
    split_dir: str | Path,
    class_videos: Mapping[str, Sequence[str]],
    test_fraction: float = 0.3,
    seed: int = 0,
) -> dict[str, object]:
    """Build split 1 from ``{class: [video, ...]}`` and write it to ``split_dir``.

    Classes are numbered in sorted order; within each class :func:`assign_test` picks the
    test videos. Returns ``{"classes": [...], "train": [(class, video)...], "test": [...], "files": [...]}``.
    """
    classes = sorted(c for c, v in class_videos.items() if v)
    if not classes:
        raise DataError(f"{split_dir}: no classes with videos to write split lists for")
    train: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    for cls in classes:
        videos = sorted(set(class_videos[cls]))
        chosen = assign_test(videos, test_fraction, seed, key=cls)
        train += [(cls, v) for v in videos if v not in chosen]
        test += [(cls, v) for v in videos if v in chosen]
    files = write_split_files(split_dir, classes, {1: {"train": train, "test": test}})
    return {"classes": classes, "train": train, "test": test, "files": files}


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
