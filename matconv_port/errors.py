"""User-facing errors.

Every problem a user can cause (a bad file, an unknown layer, a missing frame) is
raised as a :class:`MatConvPortError` whose message is ONE line naming the file,
layer, field or frame at fault. The CLI prints it and exits with status 2; it never
shows a traceback for these.
"""
from __future__ import annotations

import errno


class MatConvPortError(Exception):
    """A one-line, user-facing error (bad input). CLI exit status 2."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class MatFileError(MatConvPortError):
    """The file is not a readable MATLAB .mat file, or is truncated/corrupt."""


class ModelFormatError(MatConvPortError):
    """The .mat file holds no MatConvNet net, or a field of it is malformed."""


class UnknownLayerError(MatConvPortError):
    """One or more layer types have no registered implementation.

    ``unknown`` maps each unknown MatConvNet type to the names of the layers using it.
    """

    def __init__(self, message: str, unknown: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.unknown = dict(unknown or {})


class ShapeError(MatConvPortError):
    """Consecutive layers disagree on a tensor shape (checked while converting)."""


class EnvironmentProblem(MatConvPortError):
    """The machine refused a write: no space left, no permission, a read-only folder.
    Not a program bug and not bad input, but the user's to fix: one line naming the
    path, CLI exit status 2, nothing half-written left behind."""


#: errno values that mean "the environment refused" (disk full, quota, permissions, read-only)
ENVIRONMENT_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS", "EFBIG") if hasattr(errno, name))


def environment_problem(exc: BaseException, path: str | None = None) -> "EnvironmentProblem | None":
    """An :class:`EnvironmentProblem` for an ``OSError`` with one of
    :data:`ENVIRONMENT_ERRNOS` (naming the error's own file, else ``path``), or, when
    ``path`` is given (a write to it was under way), for torch's C++ zip writer failing
    (``PytorchStreamWriter``/``inline_container``: it reports no errno; on a full disk
    it says ``file write failed`` or ``unexpected pos``); else None."""
    import os

    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        where = exc.filename or path
        reason = exc.strerror or os.strerror(exc.errno)
        return EnvironmentProblem(f"{os.fspath(where)}: cannot write: {reason}" if where else f"cannot write: {reason}")
    text = str(exc)
    if isinstance(exc, RuntimeError) and path and any(
            k in text for k in ("file write failed", "unexpected pos", "PytorchStreamWriter", "inline_container")):
        path = os.fspath(path)
        try:
            st = os.statvfs(os.path.dirname(os.path.abspath(path)))
            full = st.f_bavail * st.f_frsize < (1 << 20)
        except OSError:
            full = False
        reason = os.strerror(errno.ENOSPC) if full else "file write failed (is the disk full?)"
        return EnvironmentProblem(f"{path}: cannot write: {reason}")
    return None


class DataError(MatConvPortError):
    """A dataset problem: a missing video, frame, split file or an unreadable image."""
