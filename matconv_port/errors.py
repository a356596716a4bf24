"""User-facing errors.

Every problem a user can cause (a bad file, an unknown layer, a missing frame) is
raised as a :class:`MatConvPortError` whose message is ONE line naming the file,
layer, field or frame at fault. The CLI prints it and exits with status 2; it never
shows a traceback for these.
"""
from __future__ import annotations


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


class DataError(MatConvPortError):
    """A dataset problem: a missing video, frame, split file or an unreadable image."""
