"""Atomic file writes: a crash never leaves a half-written checkpoint, model,
report or frame. Everything is written to a temp file in the target's folder and
renamed over the target (``os.replace`` is atomic on POSIX and Windows)."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from typing import Iterator

from matconv_port.errors import environment_problem


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temp path beside ``path``; when the block ends normally the temp file
    gets ordinary permissions (0666 minus the umask, not mkstemp's 0600) and replaces
    ``path``; when it raises, the temp file is removed and ``path`` is untouched.

    The machine refusing a write (disk full, quota, no permission, read-only folder)
    becomes an :class:`~matconv_port.errors.EnvironmentProblem` naming ``path`` (one line,
    exit status 2 in the CLI), the temp file removed."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix or ".tmp", dir=folder)
        os.close(fd)
    except OSError as exc:  # its filename is the temp name tried: name the file asked for
        problem = environment_problem(OSError(exc.errno, exc.strerror, path), path)
        if problem is None:
            raise
        raise problem from None
    try:
        yield tmp
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        # the write's own path is the hidden temp file: name the file the user asked for
        problem = environment_problem(exc if not (isinstance(exc, OSError) and exc.filename == tmp)
                                      else OSError(exc.errno, exc.strerror, path), path)
        if problem is None:
            raise
        raise problem from None
    finally:
        try:
            if os.path.exists(tmp):
                os.unlink(tmp)
        except OSError:  # e.g. the folder went read-only: nothing more can be done
            pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
