"""``matconv-port fuse RGB_MODEL FLOW_MODEL -o FUSED.pt``: the paper's two-stream fusion."""
from __future__ import annotations

import click

from matconv_port.fusion.init import INIT_METHODS


def _fusion_rows(values: tuple[str, ...]) -> list[tuple[str, str]]:
    rows = []
    for v in values or ("relu5_3",):
        for item in v.split(","):
            item = item.strip()
            if not item:
                continue
            a, _, b = item.partition(":")
            rows.append((a, b or a))
    return rows


@click.command("fuse")
@click.argument("rgb_model", type=click.Path(dir_okay=False))
@click.argument("flow_model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Fused model file to write (converted .pt).")
@click.option("--frames", default=5, show_default=True, type=click.IntRange(min=1),
              help="Frames per clip T (3D pooling size [2 2 T]).")
@click.option("--layer", "layers", multiple=True, metavar="LAYER[:LAYER_B]",
              help="Fusion layer (repeatable or comma-separated; 'A:B' names the layer of each net). Default relu5_3.")
@click.option("--type", "fusion_type", type=click.Choice(["conv", "sum"]), default="conv", show_default=True,
              help="conv: Concat + fusion conv; sum: Sum layer (the original has no max/bilinear fusion).")
@click.option("--conv3d/--no-conv3d", "conv3d", default=None,
              help="3x3x3 Conv3D fusion (default on for conv; off: 1x1 2D fusion conv as insert_conv_layers).")
@click.option("--pool3d/--no-pool3d", "pool3d", default=True, show_default=True,
              help="Replace pool5 of both towers by 3D max pooling.")
@click.option("--init", "init_method", type=click.Choice(list(INIT_METHODS)), default="2sumAB", show_default=True,
              help="Fusion filter initialisation (the script's initMethod).")
@click.option("--fuse-into", type=click.Choice(["spatial", "temporal"]), default="spatial", show_default=True,
              help="Tower that receives the fused activations.")
@click.option("--remove-fuse-from", is_flag=True, help="Cut the other tower after the fusion layer.")
@click.option("--dropout", "dropout", default=0.85, show_default=True, type=float, help="Rate of every DropOut layer.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for random init methods.")
def command(rgb_model: str, flow_model: str, output: str, frames: int, layers: tuple[str, ...], fusion_type: str,
            conv3d: bool | None, pool3d: bool, init_method: str, fuse_into: str, remove_fuse_from: bool,
            dropout: float, seed: int) -> None:
    """Build the fused two-stream net of cnn_ucf101_fusion.m from an RGB (spatial)
    and a flow (temporal) model (.mat or converted .pt), and write it as a converted
    file. Names, shapes and initial values equal the original surgery's."""
    from matconv_port.fusion.build import FusionOptions
    from matconv_port.fusion.files import fuse_files

    options = FusionOptions(
        fusion_layers=_fusion_rows(layers), fusion_type=fusion_type,
        conv3d=(fusion_type == "conv") if conv3d is None else conv3d, pool3d=pool3d, init_method=init_method,
        fuse_into=fuse_into, remove_fuse_from=remove_fuse_from, frames=frames, dropout_rate=dropout, seed=seed)
    fuse_files(rgb_model, flow_model, output, options, log=click.echo,
               warn=lambda m: click.echo(m, err=True))
