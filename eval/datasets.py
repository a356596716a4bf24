"""The datasets evaluation knows: one :class:`DatasetSpec` per dataset in :data:`DATASETS`.

An entry says how to read its official split lists (a reader of
:mod:`~matconv_port.eval.splits`), which split numbers exist, what its split files
look like, and the size of its stored frames (``jpegs_256``: 256 x 340, what
``--plan-only`` assumes for crop boxes). The CLI's ``--dataset`` choices follow the
table; a new dataset is one :func:`register_dataset` call (writing split files is
``matconv-port prepare``'s job, :mod:`matconv_port.data.splits`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from matconv_port.errors import DataError
from matconv_port.eval.plan import STORED_FRAME_SIZE
from matconv_port.eval.splits import Split, read_hmdb51_split, read_ucf101_split

__all__ = ["DatasetSpec", "DATASETS", "register_dataset", "get_dataset"]


@dataclass(frozen=True)
class DatasetSpec:
    """``read(splits_dir, split)`` returns the :class:`~matconv_port.eval.splits.Split`;
    ``splits`` the split numbers; ``split_files`` the file layout, for messages and docs."""

    name: str
    read: Callable[[str, int], Split]
    splits: tuple[int, ...] = (1, 2, 3)
    split_files: str = ""
    frame_size: tuple[int, int] = STORED_FRAME_SIZE


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to :data:`DATASETS` (and so to ``--dataset``)."""
    if spec.name in DATASETS:
        raise ValueError(f"dataset {spec.name!r} is registered already")
    DATASETS[spec.name] = spec
    return spec


def get_dataset(name: str) -> DatasetSpec:
    """The dataset called ``name``; :class:`DataError` listing the known ones otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"dataset {name!r}: must be one of {', '.join(DATASETS)}") from None


register_dataset(DatasetSpec(
    "ucf101", read_ucf101_split,
    split_files="classInd.txt ('<index> <Class>'), trainlist0N.txt ('<Class>/<video>.avi <index>'), "
                "testlist0N.txt ('<Class>/<video>.avi')"))
register_dataset(DatasetSpec(
    "hmdb51", read_hmdb51_split,
    split_files="<class>_test_splitN.txt per class ('<video>.avi <0|1|2>': unused, train, test)"))
