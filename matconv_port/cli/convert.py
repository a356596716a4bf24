"""``matconv-port convert MODEL.mat [-o OUT.pt]``."""
from __future__ import annotations

import click

from matconv_port.cli._common import parse_csv, parse_size, semantics_option


@click.command("convert")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), help="Output file (default: MODEL with .pt).")
@click.option("--outputs", "outputs", metavar="VAR[,VAR]", help="Keep only the layers these vars need (e.g. stop before a custom head).")
@click.option("--custom-layers", "custom_layers", multiple=True, type=click.Path(dir_okay=False),
              metavar="FILE.py", help="Python file registering implementations of non-standard layer types (repeatable).")
@click.option("--input-size", metavar="H,W", help="Input size for the shape check when the file states none.")
@click.option("--float64", "float64", is_flag=True, help="Store parameters in float64.")
@semantics_option
def command(model: str, out: str | None, outputs: str | None, custom_layers: tuple[str, ...],
            input_size: str | None, float64: bool, semantics: str) -> None:
    """Convert a MatConvNet model (SimpleNN or DagNN, MAT v5/v7/v7.3) to a
    self-contained PyTorch file that `matconv_port.load_model` reads."""
    import torch

    from matconv_port.convert import convert_file

    convert_file(model, out, outputs=parse_csv(outputs), custom_layers=custom_layers,
                 input_size=parse_size(input_size), dtype=torch.float64 if float64 else torch.float32,
                 log=click.echo, semantics=semantics)
