"""``matconv-port export MODEL --format onnx|matconvnet -o OUT``."""
from __future__ import annotations

import os

import click

from matconv_port.cli._common import parse_csv, parse_size
from matconv_port.errors import MatConvPortError

FORMATS = {"onnx": "onnx", "matconvnet": "matconvnet", "mat": "matconvnet", "dagnn": "matconvnet"}
_EXTENSIONS = {".onnx": "onnx", ".mat": "matconvnet"}


def _format(fmt: str | None, out: str) -> str:
    if fmt:
        key = fmt.strip().lower()
        if key not in FORMATS:
            raise MatConvPortError(f"--format {fmt!r}: unknown format (onnx or matconvnet)")
        return FORMATS[key]
    ext = os.path.splitext(out)[1].lower()
    if ext not in _EXTENSIONS:
        raise MatConvPortError(f"{out}: cannot tell the format from the extension; give --format onnx or matconvnet")
    return _EXTENSIONS[ext]


def _load(path: str, outputs: list[str] | None):
    """The model, restricted to what ``outputs`` need (a converted ``.pt`` is pruned here,
    from its NetSpec, with the converter's ``prune_to_outputs``)."""
    from matconv_port.loading import load_model
    from matconv_port.serialization import is_converted_file

    warn = lambda m: click.echo(m, err=True)  # noqa: E731
    if outputs and os.path.isfile(path) and is_converted_file(path):
        from matconv_port.converters.loader import prune_to_outputs
        from matconv_port.network import MatConvNetModel

        full = load_model(path, warn=warn)
        return MatConvNetModel(prune_to_outputs(full.to_netspec(), outputs), warn=warn).eval()
    return load_model(path, outputs=outputs, warn=warn)


def _positive(value: int | None, option: str) -> None:
    if value is not None and value < 1:
        raise MatConvPortError(f"{option} must be a positive integer, got {value}")


@click.command("export")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Output file (NET.onnx or NET.mat).")
@click.option("--format", "fmt", metavar="onnx|matconvnet",
              help="Output format (default: from the output's extension).")
@click.option("--outputs", metavar="VAR[,VAR]", help="Vars to export (ONNX: graph outputs, default the prediction "
              "vars; matconvnet: keep only the layers these vars need).")
@click.option("--frames", type=int, metavar="T", help="ONNX: frames per video, fixed in the graph "
              "(default: the model's frames per clip, or 1). The number of videos stays dynamic.")
@click.option("--size", metavar="H,W[,C]", help="Input height and width, and channels where the first layer does "
              "not tell them (default: meta.normalization.imageSize).")
@click.option("--dynamic-size", is_flag=True, help="ONNX: make height and width dynamic too (fully convolutional use).")
@click.option("--opset", type=int, default=18, show_default=True, help="ONNX opset version.")
@click.option("--exporter", default="auto", metavar="auto|dynamo|torchscript", show_default=True,
              help="ONNX: torch.export-based exporter (dynamo), the legacy tracer (torchscript), or dynamo "
                   "falling back to torchscript (auto).")
@click.option("--no-check", is_flag=True, help="ONNX: skip the onnxruntime vs PyTorch check.")
@click.option("--rtol", type=float, default=1e-5, show_default=True,
              help="ONNX: largest accepted max |onnxruntime - PyTorch| / max |PyTorch|.")
@click.option("--mat-version", default="auto", metavar="auto|7|7.3", show_default=True,
              help="matconvnet: MAT file version (auto: 7, or 7.3 past 2 GB).")
@click.option("--check-data", metavar="FILE.mat", type=click.Path(dir_okay=False),
              help="matconvnet: also write random inputs and the PyTorch outputs on them, for "
                   "fixtures/check_export_in_matconvnet.m.")
@click.option("--check-lrn", default="fast", metavar="fast|exact", show_default=True,
              help="LRN of the --check-data outputs: MatConvNet's CPU code (fast) or GPU code (exact).")
@click.option("--custom-layers", "custom_layers", multiple=True, type=click.Path(dir_okay=False), metavar="FILE.py",
              help="Python file registering implementations of non-standard layer types (repeatable).")
def command(model: str, out: str, fmt: str | None, outputs: str | None, frames: int | None, size: str | None,
            dynamic_size: bool, opset: int, exporter: str, no_check: bool, rtol: float, mat_version: str,
            check_data: str | None, check_lrn: str, custom_layers: tuple[str, ...]) -> None:
    """Export MODEL (a MatConvNet .mat or a converted .pt; single streams and fused
    nets) to ONNX or back to a MatConvNet DagNN .mat file (what dagnn.DagNN.saveobj
    writes; load it with dagnn.DagNN.loadobj). Nothing is written on any error."""
    from matconv_port.layers.registry import load_custom_layers

    kind = _format(fmt, out)
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise MatConvPortError(f"{out}: output folder {folder} does not exist")
    wanted = parse_csv(outputs)
    _positive(frames, "--frames")
    _positive(opset, "--opset")
    if not rtol > 0:
        raise MatConvPortError(f"--rtol must be positive, got {rtol}")
    if exporter not in ("auto", "dynamo", "torchscript"):
        raise MatConvPortError(f"--exporter {exporter!r}: expected auto, dynamo or torchscript")
    if mat_version not in ("auto", "7", "7.3"):
        raise MatConvPortError(f"--mat-version {mat_version!r}: expected auto, 7 or 7.3")
    if check_lrn not in ("fast", "exact"):
        raise MatConvPortError(f"--check-lrn {check_lrn!r}: expected fast or exact")
    hw = None
    if size:
        try:
            hw = parse_size(size)
        except MatConvPortError:
            raise MatConvPortError(f"--size {size!r}: expected H,W or H,W,C") from None
    for path in custom_layers:
        load_custom_layers(path)

    net = _load(model, wanted)
    if kind == "onnx":
        from matconv_port.export.onnx_export import export_onnx

        rel = export_onnx(net, out, outputs=wanted, frames=frames, check=not no_check, size=hw,
                          dynamic_size=dynamic_size, opset=opset, exporter=exporter, rtol=rtol,
                          log=lambda m: click.echo(m, err=True))
        wrote = f"wrote {out} (ONNX opset {opset})"
        check = "no check" if no_check else f"onnxruntime vs PyTorch: max rel diff {rel:.3g}"
        click.echo(f"{wrote}; inputs {', '.join(net.input_vars)}; outputs {', '.join(wanted or net.prediction_vars)}; "
                   f"{frames or net.frames_per_clip or 1} frame(s) per video; {check}")
    else:
        from matconv_port.export.matconvnet_export import export_matconvnet

        if check_data and os.path.abspath(check_data) == os.path.abspath(out):
            raise MatConvPortError("--check-data must differ from the output file")
        if check_data:  # computed first: a problem with it leaves nothing written
            from matconv_port.export.check_data import check_data as make_check_data

            data = make_check_data(net, frames=frames, size=hw, lrn_mode=check_lrn)
        export_matconvnet(net, out, version=mat_version)
        click.echo(f"wrote {out} (MatConvNet DagNN: {len(net.layer_specs)} layers, {len(net.param_keys)} params)")
        if check_data:
            from matconv_port.converters.matfile import write_mat

            write_mat(check_data, data, version="7")
            click.echo(f"wrote {check_data} (inputs and PyTorch outputs for fixtures/check_export_in_matconvnet.m)")
