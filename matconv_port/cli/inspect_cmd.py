"""``matconv-port inspect MODEL.mat|OUT.pt``."""
from __future__ import annotations

import click

from matconv_port.cli._common import parse_size, semantics_option


@click.command("inspect")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--input-size", metavar="H,W", help="Input size for the output-size column (default: the net's meta).")
@click.option("--custom-layers", "custom_layers", multiple=True, type=click.Path(dir_okay=False), metavar="FILE.py",
              help="Python file registering implementations of non-standard layer types.")
@semantics_option
def command(model: str, input_size: str | None, custom_layers: tuple[str, ...], semantics: str) -> None:
    """Print the network as a table (layer, type, inputs -> outputs, parameter
    shapes, output size) and its meta, like MatConvNet's net.print()."""
    from matconv_port.inspect_model import describe
    from matconv_port.layers.registry import load_custom_layers
    from matconv_port.loading import load_model

    for path in custom_layers:
        load_custom_layers(path)
    net = load_model(model, warn=lambda m: click.echo(m, err=True), semantics=semantics)
    lines = describe(net, parse_size(input_size))
    for line in lines:
        click.echo(line)
    click.echo(f"semantics: {net.semantics_choice.describe()}")
    try:
        from matconv_port.fusion import describe_fusion
    except ImportError:
        return
    if not any(l.name.endswith(("_spatial", "_temporal")) for l in net.layer_specs):
        return  # not a two-stream net
    extra = [line for line in describe_fusion(net) if line not in lines]
    if extra:
        click.echo("")
        for line in extra:
            click.echo(line)
