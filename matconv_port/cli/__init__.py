"""``matconv-port``: a thin command line over the library.

Each sub-command lives in its own module of this package and only parses options
and calls the library. User errors (:class:`~matconv_port.errors.MatConvPortError`)
print one line and exit with status 2; no traceback.
"""
from __future__ import annotations

import sys

import click

from matconv_port.cli._common import run_guarded


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        return run_guarded(lambda: super(_Group, self).invoke(ctx))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="matconv-port")
def main() -> None:
    """MatConvNet two-stream fusion models in PyTorch: convert, inspect, fuse,
    export, evaluate, train, prepare data."""


def _register() -> None:
    from matconv_port.cli import convert, eval_cmd, export, fuse, inspect_cmd, prepare, train

    for module in (convert, inspect_cmd, fuse, export, eval_cmd, train, prepare):
        main.add_command(module.command)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
