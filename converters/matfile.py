"""MATLAB ``.mat`` file I/O to and from the neutral Python representation.

:func:`read_mat` reads MAT v5/v6/v7 (level-5 format, our own decoder, see
``_mat5_read``) and v7.3 (HDF5, with h5py) into the SAME values whatever the version
(see :mod:`matconv_port.converters.mattypes` for the mapping). :func:`write_mat` writes
them back (-v7 through ``scipy.io.savemat``, -v7.3 in MATLAB's own HDF5 layout),
atomically.

Every problem with the file itself (missing, unreadable, not a MAT file, truncated,
corrupt) is raised as :class:`matconv_port.errors.MatFileError` with one line naming
the file.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from matconv_port.atomic import atomic_path
from matconv_port.errors import MatFileError

from .mattypes import MatCell, MatOpaque, MatStructArray, mat_equal  # noqa: F401  (re-exported)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
V73_THRESHOLD_BYTES = 2 * 1024 ** 3

__all__ = ["read_mat", "write_mat", "mat_version", "MatCell", "MatStructArray", "MatOpaque",
           "mat_equal", "V73_THRESHOLD_BYTES"]


def mat_version(path: str) -> str:
    """``"7.3"`` for an HDF5-based MAT file, ``"5"`` for level 5 (-v6/-v7), ``"4"`` for a
    level-4 file; raises MatFileError if the file is none of these or cannot be read."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(520)
    except FileNotFoundError:
        raise MatFileError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise MatFileError(f"{path}: is a directory, not a .mat file") from None
    except OSError as exc:
        raise MatFileError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if len(head) >= 520 and head[512:520] == HDF5_SIGNATURE:
        return "7.3"
    if head[:8] == HDF5_SIGNATURE:
        return "7.3"
    if len(head) >= 128 and head[126:128] in (b"IM", b"MI"):
        if head[:10] == b"MATLAB 7.3" and len(head) < 520:
            raise MatFileError(f"{path}: truncated MAT v7.3 file (ends inside the header)")
        return "5"
    if _looks_like_v4(head):
        return "4"
    if len(head) == 0:
        raise MatFileError(f"{path}: empty file, not a MATLAB .mat file")
    if head.startswith(b"MATLAB"):
        raise MatFileError(f"{path}: truncated MAT file (ends inside the 128-byte header)")
    raise MatFileError(f"{path}: not a MATLAB .mat file (no MAT-file header)")


def _looks_like_v4(head: bytes) -> bool:
    if len(head) < 20:
        return False
    mopt, mrows, ncols, imag, namlen = np.frombuffer(head[:20], "<i4")
    return 0 <= mopt < 5000 and mopt % 10 in (0, 1) and (mopt // 10) % 10 <= 5 and mrows >= 0 \
        and ncols >= 0 and imag in (0, 1) and 0 < namlen < 64


def read_mat(path: str, *, map_min_bytes: int | None = None) -> dict[str, Any]:
    """Read every variable of a MAT file (v4, v5/v6/v7 or v7.3) as neutral values.

    Numeric/logical arrays come back as ndarrays in MATLAB's shape and index order
    (at least 2-D), chars as str, 1x1 structs as dicts, struct arrays as
    :class:`MatStructArray`, cells as :class:`MatCell`, function handles and objects as
    :class:`MatOpaque`. Raises :class:`MatFileError` naming the file for any problem
    with the file. ``map_min_bytes`` (v7.3 files): see :func:`read_mat73`.
    """
    path = os.fspath(path)
    version = mat_version(path)
    if version == "7.3":
        return _read_v73(path, map_min_bytes)
    if version == "4":
        return _read_v4(path)
    return _read_v5(path)


def _read_v5(path: str) -> dict[str, Any]:
    from ._mat5_read import Mat5FormatError, read_mat5_file

    try:
        if os.path.getsize(path) == 0:
            raise MatFileError(f"{path}: empty file")
        with open(path, "rb") as fh:
            return read_mat5_file(fh)
    except Mat5FormatError as exc:
        raise MatFileError(f"{path}: corrupt or truncated MAT file: {exc}") from None
    except MemoryError:
        raise MatFileError(f"{path}: not enough memory to read the file") from None
    except (ValueError, OverflowError, UnicodeDecodeError, IndexError) as exc:
        raise MatFileError(f"{path}: corrupt MAT file ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise MatFileError(f"{path}: cannot read file ({exc.strerror or exc})") from None


def _read_v73(path: str, map_min_bytes: int | None = None) -> dict[str, Any]:
    import h5py

    from ._mat73_read import read_mat73

    try:
        with h5py.File(path, "r") as f:
            return read_mat73(f, map_min_bytes)
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "truncated" in msg or "eof" in msg.lower():
            raise MatFileError(f"{path}: truncated MAT v7.3 (HDF5) file ({msg})") from None
        raise MatFileError(f"{path}: corrupt or unreadable MAT v7.3 (HDF5) file ({msg})") from None


def _read_v4(path: str) -> dict[str, Any]:
    import scipy.io

    try:
        raw = scipy.io.loadmat(path, chars_as_strings=True, squeeze_me=False)
    except Exception as exc:  # scipy raises many types on bad data: rephrase them all
        raise MatFileError(f"{path}: unreadable MAT v4 file ({type(exc).__name__}: {exc})") from None
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if k.startswith("__"):
            continue
        if isinstance(v, np.ndarray) and v.dtype.kind == "U":
            rows = [str(r) for r in v.reshape(-1)]
            out[k] = rows[0] if len(rows) == 1 else rows
        else:
            out[k] = np.asarray(v)
    return out


# ----------------------------------------------------------------------------- writing
def _total_bytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(_total_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_total_bytes(v) for v in value)
    if hasattr(value, "nbytes"):
        try:
            return int(value.nbytes)
        except Exception:
            return 0
    return 0


def write_mat(path: str, variables: dict[str, Any], version: str = "auto") -> None:
    """Write ``variables`` (name -> neutral value) to ``path`` as a MAT file.

    ``version``: ``"7"`` (compressed level 5 via scipy, long field names), ``"7.3"``
    (HDF5 in MATLAB's layout) or ``"auto"`` (7.3 when the arrays total more than 2 GB,
    MATLAB's limit for -v7 variables; else 7). Torch tensors are written as arrays.
    The file is written to a temporary file in the same folder and moved into place.
    """
    path = os.fspath(path)
    if version not in ("auto", "7", "7.3"):
        raise ValueError(f"version must be 'auto', '7' or '7.3', not {version!r}")
    for name in variables:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{name!r} is not a valid MATLAB variable name")
    variables = {k: _plain_arrays(v) for k, v in variables.items()}
    if version == "auto":
        version = "7.3" if _total_bytes(variables) > V73_THRESHOLD_BYTES else "7"
    with atomic_path(path, ".mat") as tmp:
        if version == "7.3":
            from ._mat73_write import write_mat73

            write_mat73(tmp, variables)
        else:
            from ._mat5_write import write_mat5

            write_mat5(tmp, variables)


def _plain_arrays(value: Any) -> Any:
    """Torch tensors -> ndarrays, recursively (keeps MatCell/MatStructArray types)."""
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    if isinstance(value, MatStructArray):
        return MatStructArray([_plain_arrays(v) for v in value], shape=value.shape, fields=value.fields)
    if isinstance(value, MatCell):
        return MatCell([_plain_arrays(v) for v in value], shape=value.shape)
    if isinstance(value, dict):
        return {k: _plain_arrays(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain_arrays(v) for v in value)
    if isinstance(value, list) and not all(isinstance(v, str) for v in value):
        return [_plain_arrays(v) for v in value]
    return value
