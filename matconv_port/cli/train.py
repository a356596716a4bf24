"""`matconv-port train` (not implemented yet)."""
from __future__ import annotations

import click

from matconv_port.cli._common import fail


@click.command("train", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def command() -> None:
    """Not yet available in this version."""
    fail("matconv-port train: not yet implemented")
