"""Emulation of MatConvNet's CPU LRN (``lrn_mode="fast"``); the formula and the
exact mode are :func:`matconv_port.layers.normalization.lrn`.

The CPU implementation (``matlab/src/bits/impl/normalize_cpu.cpp``, compiled with
``VL_NNNORMALIZE_FAST`` defined) differs from that formula in two ways, both
emulated here in ``mode="fast"``:

1. ``pow(z, -beta)`` is replaced by ``fast_pow``: ``log2`` of the base is taken as
   its binary exponent plus a cubic polynomial of the mantissa, multiplied by the
   exponent, and ``2^t`` is rebuilt as the integer part of ``t`` plus a cubic
   polynomial of the fractional part, written straight into the float's bits
   (up to ~0.3% relative error). Only this ``pow`` is approximated.
2. The window sum of squares is a RUNNING sum over channels: for
   ``t = -m2 .. C-1`` the accumulator gets ``+ x[t+m2]^2`` (while ``t+m2 < C``) and
   ``- x[t-m1-1]^2`` (once ``t-m1-1 >= 0``); when both apply the compiled code
   (``-ffast-math``) computes ``(acc + x[t+m2]^2) - x[t-m1-1]^2``. Channel ``t``'s
   output uses the accumulator after the update of step ``t``. The rounding of that
   running sum differs from a fresh sum; in float32 a channel much smaller than an
   earlier one keeps the rounding residue of the large squares (the base can even go
   negative, and MatConvNet's CPU output is then garbage: reproduced here too).

The arithmetic was matched against the disassembled ``normalize_cpu.o`` of the
reference build (g++ 12, -O2): :func:`lrn_cpu` reproduces every CPU LRN output of the
project's fixtures bit for bit, in float32 and float64.
"""
from __future__ import annotations

import torch

__all__ = ["fast_pow", "lrn_cpu"]

# Polynomial coefficients of normalize_cpu.cpp's fast_pow (same in the float and
# double versions; the float version rounds them to float).
_PLOG1 = 1.442695040888963
_PLOG2 = -0.606737602222409
_PLOG3 = 0.164042561333445
_PEXP1 = 0.693147180559945
_PEXP2 = 0.227411277760219
_PEXP3 = 0.079441541679836

# dtype -> (same-width int dtype, mantissa bits, exponent bias)
_BITS = {
    torch.float32: (torch.int32, 23, 127),
    torch.float64: (torch.int64, 52, 1023),
}


class _FastPow(torch.autograd.Function):
    """``fast_pow`` with the derivative MatConvNet's CPU backward uses:
    d/dz z^e = e * fast_pow(z, e) / z."""

    @staticmethod
    def forward(ctx, base: torch.Tensor, exponent: float) -> torch.Tensor:  # type: ignore[override]
        z = _fast_pow_values(base, exponent)
        ctx.save_for_backward(base, z)
        ctx.exponent = exponent
        return z

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        base, z = ctx.saved_tensors
        return grad * (ctx.exponent * z / base), None


def fast_pow(base: torch.Tensor, exponent: float) -> torch.Tensor:
    """MatConvNet's CPU approximation of ``base ** exponent`` (elementwise).

    Reproduces ``fast_pow`` of ``normalize_cpu.cpp`` (non-``VERY_FAST`` branch) in
    the precision of ``base`` (float32 or float64), operation for operation:

    * ``ix = bits(base) - bits(1.0)``; ``fx = ix >> mantissa_bits`` (arithmetic
      shift: the unbiased exponent); ``mx`` = mantissa of ``base`` in ``[0, 1)``;
    * ``t = exponent * (fx + mx*plog1 + mx^2*plog2 + mx^3*plog3)`` (~ log2 times
      exponent), evaluated as GCC's fast-math compiled it:
      ``exponent * ((fx + mx^2*plog2) + mx*(mx^2*plog3 + plog1))``;
    * ``rz = t - floor(t)``; ``tz = floor(t) + rz*pexp1 + rz^2*pexp2 + rz^3*pexp3``,
      compiled as ``rz*(rz^2*pexp3 + pexp1) + (rz^2*pexp2 + floor(t))``;
    * result bits = ``int(tz * 2^mantissa_bits)`` (C cast: truncation toward zero)
      ``+ bits(1.0)``.

    Meant for positive finite ``base`` (LRN's ``kappa + alpha*sum``); like the C code
    it gives meaningless values for zero, negative or non-finite bases.
    Other floating dtypes are computed in float32 and cast back. Differentiable: the
    gradient is ``exponent * fast_pow(base, exponent) / base`` (the form MatConvNet's CPU
    LRN backward uses).
    """
    if not torch.is_floating_point(base):
        raise TypeError(f"fast_pow needs a floating-point tensor, got {base.dtype}")
    if base.requires_grad and torch.is_grad_enabled():
        return _FastPow.apply(base, float(exponent))
    return _fast_pow_values(base, exponent)


def _fast_pow_values(base: torch.Tensor, exponent: float) -> torch.Tensor:
    """The values of :func:`fast_pow` (no autograd)."""
    orig_dtype = base.dtype
    if orig_dtype not in _BITS:
        base = base.to(torch.float32)
    dtype = base.dtype
    int_dtype, mbits, bias = _BITS[dtype]
    base = base.contiguous()

    def c(v: float) -> torch.Tensor:  # a constant rounded to the working precision
        return torch.tensor(v, dtype=dtype, device=base.device)

    one_bits = bias << mbits
    ix = base.view(int_dtype) - one_bits
    imx = torch.bitwise_and(ix, (1 << mbits) - 1) + one_bits
    fx = torch.bitwise_right_shift(ix, mbits).to(dtype)
    mx = imx.view(dtype) - c(1.0)
    mx2 = mx * mx
    # -ffast-math regrouping of fx + mx*plog1 + mx^2*plog2 + mx^3*plog3
    t = c(exponent) * ((fx + mx2 * c(_PLOG2)) + mx * (mx2 * c(_PLOG3) + c(_PLOG1)))

    fz = torch.floor(t)
    rz = t - fz
    rz2 = rz * rz
    # -ffast-math regrouping of fz + rz*pexp1 + rz^2*pexp2 + rz^3*pexp3
    tz = rz * (rz2 * c(_PEXP3) + c(_PEXP1)) + (rz2 * c(_PEXP2) + fz)

    zi = torch.trunc(tz * c(float(1 << mbits))).to(int_dtype) + one_bits
    z = zi.view(dtype)
    return z if z.dtype == orig_dtype else z.to(orig_dtype)


def _running_window_sum(sq: torch.Tensor, m1: int, m2: int) -> torch.Tensor:
    """Window sums of ``sq`` (N x C x H x W) over channels, as the CPU running sum."""
    n_ch = sq.shape[1]
    acc = torch.zeros_like(sq[:, 0])
    out = torch.empty_like(sq)
    for t in range(-m2, n_ch):
        tm, tp = t - m1 - 1, t + m2
        if tm >= 0 and tp < n_ch:
            acc = (acc + sq[:, tp]) - sq[:, tm]  # as compiled (fast-math regrouped)
        elif tm < 0 and tp < n_ch:
            acc = acc + sq[:, tp]
        elif tm >= 0 and tp >= n_ch:
            acc = acc - sq[:, tm]
        if t >= 0:
            out[:, t] = acc
    return out


def lrn_cpu(x: torch.Tensor, m1: int, m2: int, kappa: float, alpha: float, beta: float) -> torch.Tensor:
    """``normalize_cpu.cpp``'s LRN of an ``N x C x H x W`` float tensor, window ``(m1, m2)``:
    the parameters rounded to the input's precision (the MEX file converts them), the
    running window sum and :func:`fast_pow`. Differentiable (through the running sum
    and :func:`fast_pow`'s MatConvNet-style derivative)."""
    dtype = x.dtype
    k = torch.tensor(float(kappa), dtype=dtype, device=x.device)
    a = torch.tensor(float(alpha), dtype=dtype, device=x.device)
    nb = torch.tensor(-float(beta), dtype=dtype, device=x.device)
    window = _running_window_sum(x * x, m1, m2)
    return x * fast_pow(k + a * window, float(nb))
