"""Export a :class:`~matconv_port.network.MatConvNetModel` to ONNX.

Graph conventions (what a deployment needs to know):

* One graph input per MatConvNet input var the chosen outputs need, named after it
  (``input``, ``input_flow``, ``x0`` for SimpleNN nets), ``N x C x H x W`` float32
  (MatConvNet's ``H x W x C x N`` permuted), already mean-subtracted as MatConvNet
  nets expect.
* ``N = videos x frames``, frames varying fastest (item = video * frames + frame), as
  in MatConvNet's 4th dim. The number of videos is dynamic (symbolic dim
  ``frames*videos``); the frames per video are fixed at export time (``frames``,
  default the model's ``frames_per_clip``, or 1 for frame-wise nets).
* ``H`` and ``W`` are fixed (from ``size`` or ``meta.normalization.imageSize``),
  unless ``dynamic_size=True`` (fully convolutional use, e.g. dense evaluation on
  whole frames).
* Outputs: the prediction vars (first input of each loss layer), or the vars given,
  named after them.
* LRN is exported with the exact pow (MatConvNet's GPU behaviour).

The exported graph is checked with onnxruntime against the PyTorch model on random
inputs for two numbers of videos; :func:`export_onnx` returns the max relative
difference (``max|ort - torch| / max|torch|`` over outputs).
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import re
import warnings
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from matconv_port.atomic import atomic_path
from matconv_port.errors import MatConvPortError, ShapeError

#: max |onnxruntime - PyTorch| / max |PyTorch| accepted by the check
ONNX_RTOL = 1e-5
DEFAULT_OPSET = 18

__all__ = ["export_onnx", "onnx_input_shapes", "OnnxGraph", "ONNX_RTOL", "needed_layers"]


# ----------------------------------------------------------------------------- graph pieces
def needed_layers(model, outputs: Sequence[str]) -> tuple[list[int], list[str]]:
    """Layers (0-based, in DagNN execution order) needed to compute ``outputs`` from
    the data inputs, and the data input vars they read (in ``model.input_vars`` order).

    Raises MatConvPortError if an output does not exist or needs a label (losses)."""
    known = set(model.var_names)
    for v in outputs:
        if v not in known:
            raise MatConvPortError(
                f"{model.source or 'network'}: output var {v!r} does not exist (vars: {_short_list(model.var_names)})")
    producer: dict[str, int] = {}
    for li, l in enumerate(model.layer_specs):
        for o in l.outputs:
            producer.setdefault(o, li)
    data_inputs = set(model.input_vars)
    needed: set[int] = set()
    used_inputs: set[str] = set()
    stack = list(outputs)
    seen: set[str] = set()
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        if v in producer:
            li = producer[v]
            needed.add(li)
            stack.extend(model.layer_specs[li].inputs)
        elif v in data_inputs:
            used_inputs.add(v)
        else:
            which = [o for o in outputs if v == o]
            what = f"output var {v!r}" if which else f"var {v!r} (needed for {', '.join(outputs)})"
            raise MatConvPortError(
                f"{model.source or 'network'}: {what} is a label input, not computable from the data inputs "
                f"{model.input_vars}; ONNX export covers inference vars only (choose vars before the loss layers)")
    order = [li for li in model.execution_order if li in needed]
    inputs = [v for v in model.input_vars if v in used_inputs]
    return order, inputs


def _short_list(names: Sequence[str], n: int = 8) -> str:
    return ", ".join(names[:n]) + (" ..." if len(names) > n else "")


def onnx_input_shapes(model, inputs: Sequence[str], size: Sequence[int] | None = None) -> dict[str, tuple[int, int, int]]:
    """``C x H x W`` of each graph input. ``H x W`` from ``size`` (``[H, W]`` or
    ``[H, W, C]``) or the size ``meta`` states (``normalization.imageSize``); ``C`` from
    the first layer reading the var (:func:`~matconv_port.shapecheck.input_channels`),
    else ``size(3)`` or ``imageSize(3)``."""
    from matconv_port.shapecheck import input_channels, meta_input_size

    image = meta_input_size(model.meta) or []
    fallback_c = None
    if size is not None:
        hw = [int(s) for s in size]
        if len(hw) not in (2, 3) or min(hw) < 1:
            raise MatConvPortError(f"--size must be H,W or H,W,C (positive integers), got {list(size)}")
        if len(hw) == 3:
            fallback_c = hw[2]
        hw = hw[:2]
    elif len(image) >= 2:
        hw = image[:2]
    else:
        raise MatConvPortError(
            f"{model.source or 'network'}: meta.normalization.imageSize is missing; give the input size (--size H,W)")
    if fallback_c is None and len(image) >= 3 and len(inputs) == 1:
        fallback_c = image[2]
    shapes = {}
    for v in inputs:
        c = input_channels(model, v) or fallback_c
        if c is None:
            raise MatConvPortError(f"{model.source or 'network'}: cannot tell the number of channels of input {v!r}; "
                                   f"give it with --size H,W,C")
        shapes[v] = (int(c), hw[0], hw[1])
    return shapes


class OnnxGraph(nn.Module):
    """The traced function: data inputs (``input_vars`` order) -> chosen output vars.

    Runs only the layers the outputs need, in DagNN execution order, with
    ``num_videos = N // frames`` computed from the input's shape so that the number
    of videos stays symbolic in the exported graph (the 3D layers then reshape with
    ``N // num_videos == frames``)."""

    def __init__(self, model, inputs: Sequence[str], outputs: Sequence[str], frames: int, layers: Sequence[int],
                 lrn_mode: str = "exact"):
        super().__init__()
        self.model = model
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.frames = int(frames)
        self.order = list(layers)
        self.lrn_mode = lrn_mode

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values, _ = self.model.execute(dict(zip(self.inputs, xs)), xs[0].shape[0] // self.frames, training=False,
                                       layers=self.order, lrn_mode=self.lrn_mode)
        missing = [v for v in self.outputs if v not in values]
        if missing:
            raise ShapeError(f"output var(s) {missing} were not computed")
        return tuple(values[v] for v in self.outputs)


# ----------------------------------------------------------------------------- export
@contextlib.contextmanager
def _quiet():
    """Silence the exporters' progress prints, warnings and log lines."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx",
                                               "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _first_line(exc: BaseException) -> str:
    """First line of the innermost cause (the exporters wrap the real error)."""
    seen = 0
    while exc.__cause__ is not None and seen < 10:
        exc, seen = exc.__cause__, seen + 1
    text = _ANSI.sub("", str(exc)).strip()
    for line in text.splitlines():
        if line.strip():
            return f"{type(exc).__name__}: {line.strip()}"[:300]
    return type(exc).__name__


def _custom_layers(model, layers: Sequence[int]) -> list[str]:
    out = []
    for li in layers:
        module = model.layers[li]
        if not type(module).__module__.startswith("matconv_port.layers"):
            out.append(f"{model.layer_specs[li].name!r} ({model.layer_specs[li].type})")
    return out


def _export_dynamo(graph: OnnxGraph, example: tuple, path: str, frames: int, dynamic_size: bool, opset: int) -> None:
    videos = torch.export.Dim("videos", min=1, max=65536)
    items = videos if frames == 1 else frames * videos
    dims: dict[int, object] = {0: items}
    if dynamic_size:
        dims[2] = torch.export.Dim("height", min=1, max=8192)
        dims[3] = torch.export.Dim("width", min=1, max=8192)
    dynamic_shapes = (tuple(dict(dims) for _ in example),)
    torch.onnx.export(graph, example, path, input_names=graph.inputs, output_names=graph.outputs,
                      dynamic_shapes=dynamic_shapes, dynamo=True, opset_version=opset, external_data=False,
                      verbose=False, optimize=True)


def _export_torchscript(graph: OnnxGraph, example: tuple, path: str, frames: int, dynamic_size: bool,
                        opset: int) -> None:
    axes: dict[str, dict[int, str]] = {}
    for name in graph.inputs:
        axes[name] = {0: "items"}
        if dynamic_size:
            axes[name].update({2: "height", 3: "width"})
    for name in graph.outputs:
        axes[name] = {0: "out_items"}
        if dynamic_size:
            axes[name].update({2: "out_height", 3: "out_width"})
    torch.onnx.export(graph, example, path, input_names=graph.inputs, output_names=graph.outputs,
                      dynamic_axes=axes, dynamo=False, opset_version=min(opset, 17))


_EXPORTERS = {"dynamo": _export_dynamo, "torchscript": _export_torchscript}


def _random_inputs(shapes: dict[str, tuple[int, int, int]], items: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn((items,) + tuple(shapes[v]), generator=gen) for v in shapes]


def check_onnx(path: str, graph: OnnxGraph, shapes: dict[str, tuple[int, int, int]],
               videos: Sequence[int] = (1, 3), seed: int = 0) -> float:
    """Run the ONNX file with onnxruntime (CPU) and ``graph`` with PyTorch on the same
    random inputs for each number of videos; return the max relative difference."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # errors come back as exceptions; keep stderr clean
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    worst = 0.0
    for k, nv in enumerate(videos):
        xs = _random_inputs(shapes, nv * graph.frames, seed + k)
        with torch.no_grad():
            ref = graph(*xs)
        feed = {n: x.numpy() for n, x in zip(graph.inputs, xs) if n in names}
        got = session.run(list(graph.outputs), feed)
        for var, r, g in zip(graph.outputs, ref, got):
            r = r.detach().cpu().numpy()
            if r.shape != g.shape:
                raise ShapeError(f"ONNX output {var!r} has shape {g.shape}, PyTorch gives {r.shape} ({nv} videos)")
            scale = float(np.abs(r).max()) if r.size else 0.0
            diff = float(np.abs(r.astype(np.float64) - g.astype(np.float64)).max()) if r.size else 0.0
            rel = diff / scale if scale > 0 else diff
            if not np.isfinite(rel):
                rel = float("inf")
            worst = max(worst, rel)
    return worst


def _float32_error(graph: OnnxGraph, shapes: dict[str, tuple[int, int, int]], seed: int = 0) -> float | None:
    """max |float32 - float64| / max |float64| of the PyTorch graph on the first check
    input: how much float32 rounding alone moves this net's outputs (a diagnostic for a
    failed check on very deep nets)."""
    try:
        net64 = copy.deepcopy(graph.model).to(torch.float64)
        g64 = OnnxGraph(net64, graph.inputs, graph.outputs, graph.frames, graph.order, graph.lrn_mode)
        xs = _random_inputs(shapes, graph.frames, seed)
        with torch.no_grad():
            a, b = graph(*xs), g64(*[x.double() for x in xs])
        worst = 0.0
        for x, y in zip(a, b):
            scale = float(y.abs().max())
            diff = float((x.double() - y).abs().max())
            worst = max(worst, diff / scale if scale > 0 else diff)
        return worst
    except Exception:  # only a diagnostic
        return None


def export_onnx(model, path: str, outputs: Sequence[str] | None = None, frames: int | None = None,
                check: bool = True, *, size: Sequence[int] | None = None, dynamic_size: bool = False,
                opset: int = DEFAULT_OPSET, exporter: str = "auto", rtol: float = ONNX_RTOL,
                log: Callable[[str], None] | None = None) -> float:
    """Export ``model`` (a :class:`~matconv_port.network.MatConvNetModel`) to the ONNX
    file ``path``; return the max relative difference between onnxruntime and PyTorch
    (``nan`` with ``check=False``).

    ``outputs``: var names (default ``model.prediction_vars``). ``frames``: frames per
    video, fixed in the graph (default ``model.frames_per_clip`` or 1); the number of
    videos is dynamic. ``size``: input ``(H, W)`` or ``(H, W, C)`` (default
    ``meta.normalization.imageSize``; C is read from the first layer when it can be).
    ``dynamic_size``: height and width dynamic too. ``exporter``: ``"dynamo"``
    (torch.export based),
    ``"torchscript"`` (the legacy tracer) or ``"auto"`` (dynamo, then torchscript; the
    tracer first with ``dynamic_size``, as torch.export specialises sizes that reach 1;
    never the tracer for nets with custom layers). ``log`` receives a note when ``auto``
    had to fall back.

    Raises MatConvPortError (nothing written) for an unknown output var, a var that
    needs labels, a layer that cannot be exported, or a check beyond ``rtol``.
    """
    if exporter not in ("auto", "dynamo", "torchscript"):
        raise ValueError("exporter must be 'auto', 'dynamo' or 'torchscript'")
    outputs = list(outputs) if outputs else list(model.prediction_vars)
    if not outputs:
        raise MatConvPortError(f"{model.source or 'network'}: the net has no output vars to export")
    if len(set(outputs)) != len(outputs):
        raise MatConvPortError(f"output vars listed twice: {outputs}")
    frames = int(frames) if frames else int(model.frames_per_clip or 1)
    if frames < 1:
        raise MatConvPortError(f"--frames must be >= 1, got {frames}")
    layers, inputs = needed_layers(model, outputs)
    if not inputs:
        raise MatConvPortError(f"{model.source or 'network'}: vars {outputs} do not depend on any data input")
    clash = set(inputs) & set(outputs)
    if clash:
        raise MatConvPortError(f"var(s) {sorted(clash)} are graph inputs, not outputs")
    shapes = onnx_input_shapes(model, inputs, size)

    net = model
    if model.dtype != torch.float32 or model.device.type != "cpu":
        net = copy.deepcopy(model).to(device="cpu", dtype=torch.float32)
    was_training = net.training
    net.eval()
    graph = OnnxGraph(net, inputs, outputs, frames, layers, lrn_mode="exact").eval()
    example = tuple(_random_inputs(shapes, 2 * frames, seed=1234))
    # a dry run in PyTorch first: shape problems are reported with the layer at fault
    try:
        with torch.no_grad():
            graph(*example)
    except MatConvPortError:
        raise
    except Exception as exc:  # a custom layer's own error
        raise MatConvPortError(f"{model.source or 'network'}: the net fails on a {2 * frames}-item input: "
                               f"{_first_line(exc)}") from None

    try:
        with atomic_path(path, ".onnx") as tmp:
            errors = []
            custom = _custom_layers(net, layers)
            if exporter == "auto":
                # torch.export specialises sizes that reach 1 (a 1x1 score map), so fully dynamic
                # H x W goes through the tracer; a custom layer is never silently traced (the
                # tracer would bake whatever its forward computes outside torch into constants)
                if dynamic_size:
                    methods = ("torchscript",) if custom else ("torchscript", "dynamo")
                else:
                    methods = ("dynamo",) if custom else ("dynamo", "torchscript")
            else:
                methods = (exporter,)
            used = None
            for method in methods:
                try:
                    with _quiet(), torch.no_grad():
                        _EXPORTERS[method](graph, example, tmp, frames, dynamic_size, opset)
                    used = method
                    break
                except MatConvPortError:
                    raise
                except Exception as exc:  # exporter failures come in many types
                    errors.append(f"{method}: {_first_line(exc)}")
            if used is None:
                culprit = f"layer(s) {', '.join(custom)} have no ONNX form" if custom else "the graph cannot be exported"
                raise MatConvPortError(f"{model.source or 'network'}: ONNX export failed: {culprit}: {errors[-1]}")
            if errors and log is not None:
                log(f"note: {errors[0]}; exported with the {used} exporter instead")
            rel = float("nan")
            hint = f" (custom layer(s) {', '.join(custom)} may have no faithful ONNX form)" if custom else ""
            if check:
                try:
                    sizes = [shapes]
                    if dynamic_size:  # a second, larger input size
                        sizes.append({v: (c, h + (h + 1) // 2, w + (w + 1) // 2) for v, (c, h, w) in shapes.items()})
                    rel = max(check_onnx(tmp, graph, sz) for sz in sizes)
                except MatConvPortError:
                    raise
                except Exception as exc:  # onnxruntime refused the graph
                    raise MatConvPortError(f"{model.source or 'network'}: onnxruntime cannot run the exported graph"
                                           f"{hint}: {_first_line(exc)}") from None
                if not rel <= rtol:
                    own = _float32_error(graph, shapes)
                    own_text = f"; PyTorch float32 is itself {own:.2g} from float64 on that input" if own is not None else ""
                    raise MatConvPortError(
                        f"{model.source or 'network'}: onnxruntime and PyTorch differ by {rel:.3g} of max |value| "
                        f"(limit {rtol:g}){hint}{own_text}; nothing written (--rtol sets the limit)")
        return rel
    finally:
        if was_training:
            net.train()
