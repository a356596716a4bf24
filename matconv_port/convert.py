"""``matconv-port convert``: MatConvNet ``.mat`` -> self-contained converted ``.pt``.

:class:`ConversionJob` holds what only conversion needs: the network built with its
params allocated but not written, and each param's MatConvNet-layout source, which
:meth:`ConversionJob.save` writes straight into the output file
(:mod:`matconv_port.stream_save`) without a full in-memory copy of the network.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Sequence

import torch

from matconv_port.errors import MatConvPortError

#: arrays of a v7.3 file at least this big are mapped, not read, when converting
CONVERT_MAP_MIN_BYTES = 1 << 20


def default_output_path(src: str) -> str:
    base, _ = os.path.splitext(src)
    return base + ".pt"


class ConversionJob:
    """A network on its way into a converted file.

    ``model`` has the graph (for the shape check and the file's layout); its params
    named in ``sources`` (``{name: (layout, MatConvNet-layout array)}``) are allocated
    but not written until :meth:`save` or :meth:`fill`. Build it with :meth:`open`."""

    def __init__(self, model, sources: dict[str, tuple[str, Any]]):
        self.model = model
        self.sources = sources
        self._streamed = False

    @classmethod
    def open(cls, path: str, dtype: torch.dtype = torch.float32, *, outputs: list[str] | None = None,
             warn=None, semantics: str = "auto") -> "ConversionJob":
        """From a ``.mat``: params allocated but not filled (big arrays of uncompressed
        v7.3 files mapped read-only from the file); a converted file is loaded as usual."""
        from matconv_port.loading import check_file, load_model
        from matconv_port.network import MatConvNetModel
        from matconv_port.serialization import is_converted_file

        check_file(path)
        if is_converted_file(path):
            return cls(load_model(path, dtype=dtype, outputs=outputs, warn=warn, semantics=semantics), {})
        from matconv_port.converters import load_netspec

        spec = load_netspec(path, outputs=outputs, map_min_bytes=CONVERT_MAP_MIN_BYTES)
        model = MatConvNetModel(spec, dtype=dtype, write_params=False, warn=warn, semantics=semantics)
        return cls(model, {p: (model.param_layouts[p], spec.params[p].value) for p in model.param_keys})

    def fill(self):
        """Write every pending param's torch layout into its tensor (one pass from its
        MatConvNet-layout source, which is then released); return the runnable model."""
        from matconv_port.layers.registry import param_into

        if self._streamed:
            raise MatConvPortError("this network's params were written to a converted file only; load that file")
        for name in list(self.sources):
            layout, value = self.sources.pop(name)
            param_into(layout, value, self.model.param(name).data.numpy())
        return self.model

    def save(self, path: str) -> None:
        """Write the converted file (atomic): pending params go straight from their
        sources into the file where this torch can write a file's layout first
        (:func:`matconv_port.stream_save.supported`), else they are filled in memory and
        the model saved; the job is consumed either way."""
        from matconv_port import stream_save
        from matconv_port.atomic import atomic_path
        from matconv_port.serialization import model_payload, save_converted

        if self.sources and stream_save.supported():
            try:
                with atomic_path(path, ".pt") as tmp:
                    # each source is released once written (LayoutUnknown comes before any)
                    stream_save.save_with_deferred_params(model_payload(self.model), tmp, self.sources)
                self._streamed = True
                return
            except stream_save.LayoutUnknown:  # nothing written yet: fill in memory instead
                pass
        save_converted(self.fill(), path)


def convert_file(src: str, out: str | None = None, *, outputs: Sequence[str] | None = None,
                 custom_layers: Sequence[str] = (), input_size: Sequence[int] | None = None,
                 dtype: torch.dtype = torch.float32, log: Callable[[str], None] = print,
                 semantics: str = "auto") -> str:
    """Convert ``src`` (any MatConvNet model file, or a converted file to re-save) to ``out``.

    Every layer is shape-checked before anything is written; on any error nothing is
    left behind. Returns the output path.
    """
    from matconv_port.layers.registry import load_custom_layers
    from matconv_port.shapecheck import check_shapes, mcn_size

    for path in custom_layers:
        load_custom_layers(path)
    out = out or default_output_path(src)
    if os.path.abspath(out) == os.path.abspath(src):
        raise MatConvPortError(f"{out}: the output would overwrite the input")
    t0 = time.perf_counter()
    log(f"reading {src}")
    job = ConversionJob.open(src, dtype=dtype, outputs=list(outputs) if outputs else None, warn=lambda m: log(m),
                             semantics=semantics)
    model = job.model
    log(f"  {len(model.layer_specs)} layers, {len(model.param_keys)} params "
        f"({sum(p.numel() for p in model.params.values()):,} weights), inputs {', '.join(model.input_vars) or '-'}")
    log(f"  semantics: {model.semantics_choice.describe()}")
    try:
        shapes = check_shapes(model, input_size)
    except MatConvPortError as exc:
        raise type(exc)(f"{src}: {exc}") from None
    if shapes:
        last = model.prediction_vars or model.output_vars
        sizes = ", ".join(f"{v} {mcn_size(shapes[v])}" for v in last if v in shapes)
        log(f"  shape check passed ({sizes})")
    job.save(out)
    log(f"wrote {out} in {time.perf_counter() - t0:.1f} s")
    return out
