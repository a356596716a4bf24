"""``matconv-port convert``: MatConvNet ``.mat`` -> self-contained converted ``.pt``."""
from __future__ import annotations

import os
import time
from typing import Callable, Sequence

import torch

from matconv_port.errors import MatConvPortError


def default_output_path(src: str) -> str:
    base, _ = os.path.splitext(src)
    return base + ".pt"


def convert_file(src: str, out: str | None = None, *, outputs: Sequence[str] | None = None,
                 custom_layers: Sequence[str] = (), input_size: Sequence[int] | None = None,
                 dtype: torch.dtype = torch.float32, log: Callable[[str], None] = print,
                 semantics: str = "auto") -> str:
    """Convert ``src`` (any MatConvNet model file, or a converted file to re-save) to ``out``.

    Every layer is shape-checked before anything is written; on any error nothing is
    left behind. Returns the output path.
    """
    from matconv_port.layers.registry import load_custom_layers
    from matconv_port.loading import open_for_conversion
    from matconv_port.serialization import save_converted
    from matconv_port.shapecheck import check_shapes, mcn_size

    for path in custom_layers:
        load_custom_layers(path)
    out = out or default_output_path(src)
    if os.path.abspath(out) == os.path.abspath(src):
        raise MatConvPortError(f"{out}: the output would overwrite the input")
    t0 = time.perf_counter()
    log(f"reading {src}")
    model = open_for_conversion(src, dtype=dtype, outputs=list(outputs) if outputs else None,
                                warn=lambda m: log(m), semantics=semantics)
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
    save_converted(model, out)
    log(f"wrote {out} in {time.perf_counter() - t0:.1f} s")
    return out
