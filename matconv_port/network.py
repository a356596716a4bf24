"""The PyTorch network built from a :class:`~matconv_port.netspec.NetSpec`.

:class:`GraphExecutor` is the one place a MatConvNet graph runs: forward
(:meth:`MatConvNetModel.forward_vars`, which returns every MatConvNet variable by
name), training and ONNX tracing (:meth:`MatConvNetModel.execute`) and the shape check
all go through it. Activations are ``N x C x H x W`` with ``N = videos x frames``,
frames fastest.

Parameters are stored once per MatConvNet param name (shared params stay one
tensor) in the torch layout their layer type declares; the original MatConvNet
shape of each is remembered, so :meth:`MatConvNetModel.to_netspec` gives the
original arrays back bit for bit.
"""
from __future__ import annotations

import contextlib
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from matconv_port.errors import MatConvPortError, ShapeError, UnknownLayerError
from matconv_port.layers.base import ForwardContext, MatConvNetLayer
from matconv_port.layers.registry import layer_class, param_to_matconvnet, param_to_torch, param_torch_shape
from matconv_port.netspec import LayerSpec, NetSpec, ParamSpec, VarSpec, unique_name
from matconv_port.precision import precision_scope, resolve_precision

LRN_MODES = ("exact", "fast")
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _param_key(name: str, used: set[str]) -> str:
    key = re.sub(r"[^0-9A-Za-z_]", "_", name) or "p"
    if key[0].isdigit():
        key = "p_" + key
    return unique_name(key, used)


def _frames_from_meta(meta: dict) -> int | None:
    """Frames per video as MatConvNet left them in ``meta`` (``curNumFrames(1)``), if any."""
    for key in ("framesPerClip", "curNumFrames"):
        value = meta.get(key) if isinstance(meta, dict) else None
        if value is None:
            continue
        arr = np.asarray(value, dtype=float).ravel()
        if arr.size and arr[0] >= 1:
            return int(arr[0])
    return None


@dataclass(frozen=True)
class Step:
    """One layer of the compiled graph: its index in the NetSpec's layer list, its
    input and output vars and the keys of its params in ``model.params``."""

    layer: int
    name: str
    type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    param_keys: tuple[str, ...]


class GraphExecutor:
    """How a MatConvNet graph runs, compiled once from the NetSpec (``dagnn.DagNN.eval``
    of ``matlab/+dagnn/@DagNN/eval.m``).

    :attr:`steps` are the layers in DagNN's execution order with their param keys.
    :meth:`run` walks them over a dict of vars with a per-step function (the model's
    layer call, or the shape check's shape arithmetic); with ``keep`` given, every
    other var is freed after its last reader (``conserveMemory``), and a step whose
    inputs all die there may overwrite them (ReLU in place) where autograd is off.
    """

    def __init__(self, layers: Sequence[LayerSpec], order: Sequence[int], param_keys: Sequence[Sequence[str]]):
        self.steps: tuple[Step, ...] = tuple(
            Step(li, layers[li].name, layers[li].type, tuple(layers[li].inputs), tuple(layers[li].outputs),
                 tuple(param_keys[li])) for li in order)
        last: dict[str, int] = {}
        for pos, step in enumerate(self.steps):
            for v in step.inputs:
                last[v] = pos
        self._last_reader = last
        self._plans: dict[frozenset, tuple[tuple[tuple[str, ...], bool], ...]] = {}

    def releases(self, keep: Collection[str]) -> tuple[tuple[tuple[str, ...], bool], ...]:
        """Per position: the vars last read there (except ``keep``), freed after it, and
        whether the step's inputs all die there (it may then overwrite them)."""
        key = frozenset(keep)
        plan = self._plans.get(key)
        if plan is None:
            rows = []
            for pos, step in enumerate(self.steps):
                dies = tuple(dict.fromkeys(v for v in step.inputs if self._last_reader[v] == pos and v not in key))
                rows.append((dies, bool(dies) and all(v in dies for v in step.inputs)))
            plan = tuple(rows)
            if len(self._plans) > 16:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def run(self, values: dict[str, Any], call: Callable[[Step, dict[str, Any], bool], None], *,
            keep: Collection[str] | None = None, wanted: Collection[str] | None = None,
            given: Collection[str] = (), frozen_upto: int = -1, layers: Collection[int] | None = None) -> dict[str, Any]:
        """Run the steps over ``values`` (var name -> value, updated in place and returned).

        ``call(step, values, overwrite)`` computes one step's outputs into ``values``;
        ``overwrite`` says the step's inputs die there and may be overwritten. A step
        whose inputs are missing is skipped. ``keep``: free every other var after its
        last reader (None: keep every var); ``wanted``: kept too, and the run stops once
        they all exist; ``given``: the caller's vars, never overwritten;
        ``frozen_upto``: steps up to this position run without autograd; ``layers``:
        run only these layer indices."""
        plan = None if keep is None and wanted is None else self.releases(set(keep or ()) | set(wanted or ()))
        wanted = set(wanted) if wanted else None
        given = set(given)
        layers = None if layers is None else set(layers)
        for pos, step in enumerate(self.steps):
            if layers is not None and step.layer not in layers:
                continue
            dies, all_die = plan[pos] if plan is not None else ((), False)
            frozen = pos <= frozen_upto
            with torch.no_grad() if frozen else contextlib.nullcontext():
                if all(v in values for v in step.inputs):
                    overwrite = all_die and not torch.is_grad_enabled() and not given.intersection(dies)
                    call(step, values, overwrite)
            for v in dies:
                values.pop(v, None)
            if wanted is not None and wanted.issubset(values):
                break
        return values


class MatConvNetModel(nn.Module):
    """A converted MatConvNet network (SimpleNN or DagNN), in eval mode by default.

    Build it with :func:`matconv_port.load_model` or from a NetSpec::

        model = MatConvNetModel(spec)                 # params in MatConvNet layout in spec
        vars_ = model.forward_vars({"input": x})      # every var by its MatConvNet name
    """

    def __init__(self, spec: NetSpec, *, dtype: torch.dtype = torch.float32, lrn_mode: str = "exact",
                 torch_params: dict[str, torch.Tensor] | None = None,
                 param_shapes: dict[str, tuple] | None = None,
                 release_spec_values: bool = False, write_params: bool = True, warn=None,
                 precision: str = "exact", semantics: str = "auto"):
        super().__init__()
        if lrn_mode not in LRN_MODES:
            raise ValueError(f"lrn_mode must be one of {LRN_MODES}")
        self.lrn_mode = lrn_mode
        #: the numerics policy every forward runs under (:mod:`matconv_port.precision`)
        self.precision = resolve_precision(precision).name
        self.source = spec.source
        self.source_format = spec.source_format
        self.meta: dict[str, Any] = spec.meta
        spec = _drop_training_only_unknown(spec, warn)
        modules = _build_layers(spec)
        #: whose MatConvNet the layers follow where the fork and stock differ (:mod:`matconv_port.semantics`)
        self.semantics_choice = _configure_semantics(spec, modules, semantics, warn)
        self.semantics = self.semantics_choice.name
        self.layer_specs: list[LayerSpec] = [
            LayerSpec(l.name, l.type, list(l.inputs), list(l.outputs), list(l.params), l.block) for l in spec.layers]
        self.vars_spec: list[VarSpec] = [VarSpec(v.name, v.precious) for v in spec.vars]
        self.layers = nn.ModuleList(modules)
        self.execution_order: list[int] = spec.execution_order()
        # ------------------------------------------------------------ params
        layouts: dict[str, str] = {}
        for layer, module in zip(spec.layers, modules):
            for slot, pname in enumerate(layer.params):
                layouts.setdefault(pname, module.param_layout(slot))
        # the file's param order (then any param only a layer names)
        self.param_layouts: dict[str, str] = {p: layouts[p] for p in spec.params if p in layouts}
        self.param_layouts.update({p: l for p, l in layouts.items() if p not in self.param_layouts})
        used_keys: set[str] = set()
        self.param_keys: dict[str, str] = {}
        self.param_shapes: dict[str, tuple] = {}
        self.param_lr: dict[str, float] = {}
        self.param_wd: dict[str, float] = {}
        self.params = nn.ParameterDict()
        for pname in self.param_layouts:
            if pname not in spec.params and not (torch_params and pname in torch_params):
                user = next(l.name for l in spec.layers if pname in l.params)
                raise MatConvPortError(f"{spec.source or 'network'}: layer {user!r} uses param {pname!r}, which the file does not hold")
            pspec = spec.params.get(pname)
            key = _param_key(pname, used_keys)
            self.param_keys[pname] = key
            if torch_params is not None and pname in torch_params:
                tensor = torch_params[pname]
                self.param_shapes[pname] = tuple(param_shapes[pname])
            else:
                value = pspec.value
                shape = tuple(np.shape(value)) if not isinstance(value, torch.Tensor) else tuple(value.shape)
                self.param_shapes[pname] = shape
                if np.size(value) == 0:
                    raise MatConvPortError(f"{spec.source or 'network'}: param {pname!r} is empty (missing weights)")
                if not write_params:
                    if np.asarray(value).dtype.kind not in "biuf":
                        raise MatConvPortError(f"{spec.source or 'network'}: param {pname!r} is not a numeric array")
                    # allocated, never touched: no memory is used until a conversion job writes it
                    tensor = torch.empty(param_torch_shape(self.param_layouts[pname], shape), dtype=dtype)
                else:
                    # released values are not used again: their memory becomes the tensor's
                    tensor = param_to_torch(self.param_layouts[pname], value, inplace=release_spec_values)
                del value
                if release_spec_values and write_params:
                    pspec.value = None
            tensor = tensor.to(dtype)
            self.params[key] = nn.Parameter(tensor, requires_grad=True)
            self.param_lr[pname] = float(pspec.learning_rate) if pspec else 1.0
            self.param_wd[pname] = float(pspec.weight_decay) if pspec else 1.0
        #: the compiled graph every run goes through
        self.executor = GraphExecutor(self.layer_specs, self.execution_order,
                                      [[self.param_keys[p] for p in l.params] for l in spec.layers])
        # an empty buffer that follows .to(dtype/device), also for nets without params
        self.register_buffer("_dtype_probe", torch.zeros(0, dtype=dtype), persistent=False)
        self.eval()

    # ------------------------------------------------------------------ names
    @property
    def var_names(self) -> list[str]:
        """Every var: the file's var order, then any var only a layer names."""
        return NetSpec(layers=self.layer_specs, vars=self.vars_spec).all_var_names()

    @property
    def all_input_vars(self) -> list[str]:
        """Vars no layer writes, in var order (images, flow, labels)."""
        produced = {o for l in self.layer_specs for o in l.outputs}
        consumed = [i for l in self.layer_specs for i in l.inputs]
        return [v for v in self.var_names if v not in produced and v in set(consumed)]

    @property
    def label_vars(self) -> list[str]:
        """Input vars read only by loss/error layers (class labels)."""
        out = []
        for v in self.all_input_vars:
            readers = [m for m, l in zip(self.layers, self.layer_specs) if v in l.inputs]
            if readers and all(m.needs_label and list(l.inputs).index(v) > 0
                               for m, l in zip(self.layers, self.layer_specs) if v in l.inputs):
                out.append(v)
        return out

    @property
    def input_vars(self) -> list[str]:
        """Data input vars (labels excluded): ``x0`` for SimpleNN, ``input``/``input_flow``..."""
        labels = set(self.label_vars)
        return [v for v in self.all_input_vars if v not in labels]

    @property
    def prediction_vars(self) -> list[str]:
        """Vars holding raw class scores (before softmax/loss): the first input of each
        loss layer (in layer order, unique); for a net without loss layers, its terminal
        vars, taking a final SoftMax's input instead of its probabilities."""
        preds: list[str] = []
        for m, l in zip(self.layers, self.layer_specs):
            if m.needs_label and l.inputs and l.inputs[0] not in preds:
                preds.append(l.inputs[0])
        if preds:
            return preds
        consumed = {i for l in self.layer_specs for i in l.inputs}
        for l in self.layer_specs:
            for v in l.outputs:
                if v in consumed:
                    continue
                v = l.inputs[0] if l.type == "dagnn.SoftMax" and l.inputs else v
                if v not in preds:
                    preds.append(v)
        return preds

    @property
    def output_vars(self) -> list[str]:
        consumed = {i for l in self.layer_specs for i in l.inputs}
        return [v for v in self.var_names if v not in consumed]

    @property
    def frames_per_clip(self) -> int | None:
        """Frames per video the net was built for (``meta.curNumFrames(1)``), if it has
        3D layers; None for frame-wise nets."""
        if not any(l.type in ("dagnn.Conv3D", "dagnn.Pooling3D") for l in self.layer_specs):
            return None
        return _frames_from_meta(self.meta) or 1

    @property
    def dtype(self) -> torch.dtype:
        """The floating-point type the net computes in (follows ``.to(dtype)``)."""
        return self._dtype_probe.dtype

    @property
    def device(self) -> torch.device:
        return self._dtype_probe.device

    def param(self, name: str) -> torch.Tensor:
        """The parameter called ``name`` in MatConvNet (torch layout)."""
        return self.params[self.param_keys[name]]

    def named_matconvnet_params(self) -> Iterable[tuple[str, nn.Parameter]]:
        for name, key in self.param_keys.items():
            yield name, self.params[key]

    # ------------------------------------------------------------------ running
    def _num_videos(self, n_items: int, num_videos: int | None) -> int:
        if num_videos is not None:
            if not isinstance(num_videos, int):  # a traced size (ONNX / torch.export): keep it symbolic
                return num_videos
            if num_videos <= 0 or n_items % num_videos:
                raise ShapeError(f"{n_items} items cannot be split into {num_videos} videos")
            return int(num_videos)
        frames = self.frames_per_clip
        if frames and n_items % frames == 0:
            return n_items // frames
        return n_items

    def forward_vars(self, inputs: dict[str, torch.Tensor], num_videos: int | None = None,
                     outputs: list[str] | None = None, training: bool | None = None) -> dict[str, torch.Tensor]:
        """Run the net; return every variable by its MatConvNet name.

        ``inputs``: input vars by name, ``N x C x H x W`` tensors (already
        mean-subtracted, as MatConvNet nets expect), ``N = videos x frames`` with frames
        fastest; labels as 1-D tensors of 1-based class indices (one per video or one per
        item). ``num_videos`` plays ``net.meta.curBatchSize``; by default
        ``N / frames_per_clip`` for nets with 3D layers, else ``N``. Layers whose inputs
        are missing (e.g. losses without a label) are skipped with everything after them.
        ``outputs``: stop once these vars are computed, freeing every other var after its
        last reader as MatConvNet's conserveMemory does (default: run everything, keep
        every var).
        """
        with precision_scope(self.precision, self.device.type):
            values, _ = self.execute(inputs, num_videos, training=training, wanted=outputs or None)
        return values

    def execute(self, inputs: dict[str, Any], num_videos: int | None = None, *, training: bool | None = None,
                keep: Iterable[str] | None = None, wanted: Iterable[str] | None = None, frozen_upto: int = -1,
                layers: Collection[int] | None = None, lrn_mode: str | None = None) -> tuple[dict, ForwardContext]:
        """Run the graph through :attr:`executor` on ``inputs``; return ``(vars, context)``
        (the context holds training's batch moments). ``keep``/``wanted``/``frozen_upto``/
        ``layers``: see :meth:`GraphExecutor.run` (the frozen prefix is
        ``net.backpropDepth``); ``lrn_mode`` overrides the model's. Runs in the caller's
        numerics (:meth:`forward_vars` adds the model's ``precision``)."""
        ctx, values = self._prepare(inputs, num_videos, training)
        if lrn_mode is not None:
            ctx.lrn_mode = lrn_mode
        self.executor.run(values, lambda step, vals, overwrite: self._run_step(step, vals, ctx, overwrite),
                          keep=keep, wanted=wanted, given=inputs, frozen_upto=frozen_upto, layers=layers)
        return values, ctx

    def _prepare(self, inputs: dict[str, Any], num_videos: int | None, training: bool | None):
        dtype, device = self.dtype, self.device
        values: dict[str, torch.Tensor] = {}
        n_items = None
        labels = set(self.label_vars)
        for name, value in inputs.items():
            t = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
            if name not in labels and (t.is_floating_point() or name in self.input_vars):
                t = t.to(device=device, dtype=dtype)
                if t.dim() == 3:
                    t = t.unsqueeze(0)
                if n_items is None and t.dim() == 4:
                    n_items = t.shape[0]
            else:
                t = t.to(device)
            values[name] = t
        videos = self._num_videos(n_items, num_videos) if n_items is not None else 1
        ctx = ForwardContext(num_videos=videos, training=self.training if training is None else training,
                             lrn_mode=self.lrn_mode)
        return ctx, values

    def _run_step(self, step: Step, values: dict[str, torch.Tensor], ctx: ForwardContext, overwrite: bool) -> None:
        module: MatConvNetLayer = self.layers[step.layer]
        ctx.overwrite_input = overwrite
        try:
            outs = module([values[v] for v in step.inputs], [self.params[k] for k in step.param_keys], ctx)
        except (MatConvPortError, _OUT_OF_MEMORY):  # out of memory: the caller names the option to lower it
            raise
        except (RuntimeError, ValueError, IndexError) as exc:
            shapes = ", ".join(f"{v} {tuple(values[v].shape)}" for v in step.inputs)
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ShapeError(f"layer {step.name!r} ({step.type}) failed on inputs {shapes} (NxCxHxW): {msg}") from exc
        finally:
            ctx.overwrite_input = False
        for name, t in zip(step.outputs, outs):
            values[name] = t

    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor):
        """Positional inputs in :attr:`input_vars` order (or by name); returns the
        :attr:`prediction_vars` (a tensor if there is one, else a tuple)."""
        inputs = dict(zip(self.input_vars, args))
        num_videos = kwargs.pop("num_videos", None)
        inputs.update(kwargs)
        wanted = self.prediction_vars
        values = self.forward_vars(inputs, num_videos=num_videos, outputs=wanted)
        outs = tuple(values[v] for v in wanted if v in values)
        return outs[0] if len(outs) == 1 else outs

    # ------------------------------------------------------------------ conversion back
    def to_netspec(self) -> NetSpec:
        """The network as a NetSpec with param values in MatConvNet's layout (numpy)."""
        params = {}
        for name, key in self.param_keys.items():
            value = param_to_matconvnet(self.param_layouts[name], self.params[key].detach(), self.param_shapes[name])
            params[name] = ParamSpec(name, value, self.param_lr[name], self.param_wd[name])
        return NetSpec(
            layers=[LayerSpec(l.name, l.type, list(l.inputs), list(l.outputs), list(l.params), dict(l.block))
                    for l in self.layer_specs],
            params=params, vars=[VarSpec(v.name, v.precious) for v in self.vars_spec],
            meta=self.meta, source_format=self.source_format, source=self.source,
            semantics=self.semantics, semantics_evidence=self.semantics_choice.to_store())

    def extra_repr(self) -> str:
        return f"{len(self.layer_specs)} layers, {len(self.param_keys)} params, inputs {self.input_vars}"


# ---------------------------------------------------------------------- building
def _unknown_types(spec: NetSpec) -> dict[str, list[str]]:
    unknown: dict[str, list[str]] = {}
    for l in spec.layers:
        if layer_class(l.type) is None:
            unknown.setdefault(l.type, []).append(l.name)
    return unknown


def _is_training_only(spec: NetSpec, index: int) -> bool:
    """A terminal layer (its outputs feed nothing) that reads a label-like input
    (a network input read only by terminal layers), or the last layer of a SimpleNN
    chain whose type or name says it is a loss."""
    layer = spec.layers[index]
    consumed = {i for l in spec.layers for i in l.inputs}
    if any(o in consumed for o in layer.outputs):
        return False
    produced = {o for l in spec.layers for o in l.outputs}
    terminal = [l for l in spec.layers if not any(o in consumed for o in l.outputs)]
    for v in layer.inputs[1:]:
        if v not in produced and all(l in terminal for l in spec.layers if v in l.inputs):
            return True
    if spec.source_format == "simplenn" and index == len(spec.layers) - 1:
        return "loss" in layer.type.lower() or "loss" in layer.name.lower()
    return False


def _drop_training_only_unknown(spec: NetSpec, warn) -> NetSpec:
    drop = []
    for i, l in enumerate(spec.layers):
        cls = layer_class(l.type)
        unknown = cls is None
        if not unknown and getattr(cls, "needs_label", False):
            try:
                cls(l)
            except UnknownLayerError:
                unknown = True
        if unknown and _is_training_only(spec, i):
            drop.append(i)
    if not drop:
        return spec
    names = [f"{spec.layers[i].name} ({spec.layers[i].type})" for i in drop]
    message = (f"warning: {spec.source or 'network'}: dropped training-only layer(s) of unknown type, "
               f"not needed for inference: {', '.join(names)}")
    (warn or (lambda m: print(m, file=sys.stderr)))(message)
    out = spec.copy()
    out.layers = [l for i, l in enumerate(spec.layers) if i not in set(drop)]
    out.rebuild_vars()
    return out


def _configure_semantics(spec: NetSpec, modules: list[MatConvNetLayer], semantics: str, warn):
    """Resolve ``semantics`` (auto/fork/stock) for ``spec`` and tell every layer."""
    from matconv_port.semantics import resolve_semantics

    choice = resolve_semantics(semantics, spec, stored=spec.semantics, stored_evidence=spec.semantics_evidence)
    messages = []
    for module in modules:
        try:
            messages += module.configure_semantics(choice.name, spec.source_format) or []
        except MatConvPortError as exc:
            raise type(exc)(f"{spec.source or 'network'}: {exc} (semantics {choice.describe()})") from None
    for message in messages:
        (warn or (lambda m: print(m, file=sys.stderr)))(f"warning: {spec.source or 'network'}: {message}")
    return choice


def _build_layers(spec: NetSpec) -> list[MatConvNetLayer]:
    unknown = _unknown_types(spec)
    modules: list[MatConvNetLayer] = []
    for l in spec.layers:
        cls = layer_class(l.type)
        if cls is None:
            continue
        try:
            modules.append(cls(l))
        except UnknownLayerError as exc:
            for t, names in exc.unknown.items():
                unknown.setdefault(t, []).extend(names)
        except MatConvPortError as exc:
            raise type(exc)(f"{spec.source or 'network'}: {exc}") from None
    if unknown:
        listing = "; ".join(f"{t} (layers: {', '.join(n[:5])}{' ...' if len(n) > 5 else ''})" for t, n in unknown.items())
        raise UnknownLayerError(
            f"{spec.source or 'network'}: unsupported layer type(s): {listing}. Use --outputs VAR[,VAR] to keep only "
            f"what those vars need, or --custom-layers FILE.py to register implementations", unknown)
    return modules
