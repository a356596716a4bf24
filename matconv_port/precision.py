"""The numerics policy: ONE option, ``exact | tf32 | bf16``, for every forward and backward.

PyTorch's own CUDA default lets cuDNN convolutions use TF32 (10-bit mantissa) on
Ampere and later GPUs, which moves results of a VGG-16 by ~1e-3 relative: that would
silently break MatConvNet parity. Every place that runs a net therefore runs it under
:func:`precision_scope`, which sets the flags for the duration and restores them:

========  ===============================================  ==========================
mode      convolutions and matmuls                         use
========  ===============================================  ==========================
exact     IEEE fp32 (TF32 off for cuDNN and cuBLAS)        parity; the default
tf32      TF32 allowed for cuDNN and cuBLAS                fast fp32 on Ampere+
bf16      ``torch.autocast(dtype=torch.bfloat16)``         fastest; training (``--amp``)
========  ===============================================  ==========================

On CPU the TF32 flags have no effect, so ``exact`` and ``tf32`` compute the same.
What each mode costs in accuracy, as measured, is in ``benchmarks/RESULTS_gpu.md``.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch

from matconv_port.errors import MatConvPortError


@dataclass(frozen=True)
class Precision:
    name: str
    #: TF32 for cuDNN convolutions and cuBLAS matmuls
    tf32: bool
    #: autocast dtype, or None for plain fp32/fp64
    autocast_dtype: torch.dtype | None
    description: str


#: the policies, by the name ``--precision`` and ``precision=`` take
PRECISIONS: dict[str, Precision] = {
    "exact": Precision("exact", False, None, "IEEE fp32: TF32 off; MatConvNet parity (default)"),
    "tf32": Precision("tf32", True, None, "TF32 allowed for convolutions and matmuls (Ampere+ GPUs)"),
    "bf16": Precision("bf16", True, torch.bfloat16, "bfloat16 autocast (mixed precision)"),
}

DEFAULT_PRECISION = "exact"


def resolve_precision(name: "str | Precision | None", *, amp: bool = False) -> Precision:
    """The policy called ``name`` (None: ``exact``, or ``bf16`` when ``amp`` is set,
    ``--amp`` being the old spelling of ``--precision bf16``)."""
    if isinstance(name, Precision):
        return name
    if name is None:
        name = "bf16" if amp else DEFAULT_PRECISION
    if name not in PRECISIONS:
        raise MatConvPortError(f"precision {name!r}: expected one of {', '.join(PRECISIONS)}")
    if amp and name != "bf16":
        raise MatConvPortError(f"--amp means --precision bf16; it contradicts --precision {name}")
    return PRECISIONS[name]


def _tf32_state() -> tuple:
    b = torch.backends
    if hasattr(b.cuda.matmul, "fp32_precision"):  # torch >= 2.9: the per-backend API
        return ("new", b.cuda.matmul.fp32_precision, b.cudnn.conv.fp32_precision)
    return ("legacy", b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32)


def _set_tf32_state(state: tuple) -> None:
    b = torch.backends
    if state[0] == "new":
        b.cuda.matmul.fp32_precision, b.cudnn.conv.fp32_precision = state[1], state[2]
    else:
        b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32 = state[1], state[2]


def _tf32_flags(allow: bool) -> tuple:
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        mode = "tf32" if allow else "ieee"
        return ("new", mode, mode)
    return ("legacy", allow, allow)


def set_tf32(allow: bool) -> None:
    """Set TF32 for cuDNN convolutions and cuBLAS matmuls process-wide."""
    _set_tf32_state(_tf32_flags(allow))


def tf32_enabled() -> tuple[bool, bool]:
    """(matmul, conv) TF32 flags as they are now."""
    state = _tf32_state()
    if state[0] == "new":
        return state[1] == "tf32", state[2] == "tf32"
    return bool(state[1]), bool(state[2])


@contextlib.contextmanager
def precision_scope(precision: "str | Precision", device_type: str = "cuda") -> Iterator[Precision]:
    """Run the enclosed forward/backward under ``precision``; the global TF32 flags
    are restored on exit. ``device_type`` selects the autocast device (``cpu``/``cuda``)."""
    p = resolve_precision(precision)
    before = _tf32_state()
    _set_tf32_state(_tf32_flags(p.tf32))
    try:
        if p.autocast_dtype is not None:
            with torch.autocast(device_type=device_type, dtype=p.autocast_dtype):
                yield p
        else:
            yield p
    finally:
        _set_tf32_state(before)
