"""Shared CLI plumbing: error reporting and exit codes."""
from __future__ import annotations

import os
import sys
from typing import Callable, TypeVar

import click

from matconv_port.errors import MatConvPortError, environment_problem

T = TypeVar("T")

EXIT_BAD_INPUT = 2


def fail(message: str) -> "NoReturn":  # noqa: F821
    """Print a one-line error and exit with status 2."""
    click.echo(f"error: {' '.join(str(message).split())}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def run_guarded(fn: Callable[[], T]) -> T:
    """Run a command; turn user errors into one line on stderr and exit status 2."""
    try:
        return fn()
    except MatConvPortError as exc:
        fail(str(exc))
    except FileNotFoundError as exc:
        fail(f"{exc.filename}: no such file" if exc.filename else str(exc))
    except BrokenPipeError:  # the reader went away (`matconv-port inspect X | head`): stop quietly, as cat does
        _quiet_broken_pipe()
    except OSError as exc:  # disk full, no permission, read-only folder: the user's to fix, not a bug
        problem = environment_problem(exc)
        if problem is None:
            _internal_error(exc)
        fail(str(problem))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort, SystemExit):
        raise
    except Exception as exc:  # a bug, not bad input: still one line unless asked for more
        _internal_error(exc)


def _quiet_broken_pipe() -> "NoReturn":  # noqa: F821
    """Exit with the status a process killed by SIGPIPE has (128 + 13), printing
    nothing; stdout is pointed at /dev/null so that Python's own flush at exit does
    not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    sys.exit(141)


def _internal_error(exc: Exception) -> "NoReturn":  # noqa: F821
    if os.environ.get("MATCONV_PORT_DEBUG"):
        raise exc
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    click.echo(f"internal error: {type(exc).__name__}: {first} (set MATCONV_PORT_DEBUG=1 for the traceback; "
               f"please report it)", err=True)
    sys.exit(1)


def semantics_option(fn):
    """``--semantics auto|fork|stock`` (see :mod:`matconv_port.semantics`)."""
    return click.option(
        "--semantics", "semantics", type=click.Choice(["auto", "fork", "stock"]), default="auto", show_default=True,
        help="Whose MatConvNet to follow where the paper's fork and stock MatConvNet (v1.0-beta25) compute "
             "different things (Loss averaging, Concat padding, BatchNorm epsilon); auto: stored in a converted "
             "file, else read from the file's evidence, else fork.")(fn)


def parse_csv(value: str | None) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]``; None/empty -> None."""
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_size(value: str | None) -> list[int] | None:
    """``"224,224"`` or ``"224x224"`` -> ``[224, 224]``."""
    if not value:
        return None
    parts = value.replace("x", ",").split(",")
    try:
        return [int(p) for p in parts if p.strip()]
    except ValueError:
        raise MatConvPortError(f"--input-size {value!r}: expected H,W") from None
