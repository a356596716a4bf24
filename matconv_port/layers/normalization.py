"""Normalisation layers: ``dagnn.LRN`` (SimpleNN ``normalize``/``lrn``) and
``dagnn.BatchNorm`` (SimpleNN ``bnorm``).

LRN, ``param = [N kappa alpha beta]``:
``y_c = x_c * (kappa + alpha * sum_{q=c-m1}^{c+m2} x_q^2) ^ (-beta)``,
``m1 = floor((N-1)/2)``, ``m2 = N-1-m1`` (asymmetric for even N), clipped at the
channel ends; alpha is NOT divided by N (PyTorch's ``local_response_norm`` divides).
MatConvNet's CPU code approximates pow (up to ~0.3% relative); its GPU code is exact.
``ForwardContext.lrn_mode`` picks ``"exact"`` or ``"fast"`` (the CPU emulation of
:mod:`matconv_port.layers.lrn_fastpow`); both are :func:`lrn`.

BatchNorm at test time: params ``[g, b, moments]`` with moments ``C x 2`` =
``[mean, sigma]``, sigma already ``sqrt(var + eps)``:
``y = g / sigma * (x - mean) + b`` (no epsilon added). In training mode the batch
moments are used (``sigma = sqrt(var + epsilon)``, var over N, H, W, biased), as
``vl_nnbnorm`` does; they are recorded for MatConvNet's moment update. Epsilon's
default differs between the fork and stock MatConvNet (:mod:`matconv_port.semantics`).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from matconv_port.errors import ShapeError
from matconv_port.layers.base import ForwardContext, MatConvNetLayer, SameShapeLayer, Shape
from matconv_port.layers.registry import register_layer


def lrn_window(depth: int) -> tuple[int, int]:
    """``(m1, m2)``: channels before / after ``c`` in the LRN window of ``depth``:
    ``m1 = floor((depth-1)/2)``, ``m2 = depth-1-m1`` (``normalize_cpu.cpp``; depth >= 1)."""
    depth = int(depth)
    if depth < 1:
        raise ValueError(f"LRN depth must be >= 1, got {depth}")
    m1 = (depth - 1) // 2
    return m1, depth - 1 - m1


def lrn(x: torch.Tensor, depth: int, kappa: float, alpha: float, beta: float, mode: str = "exact") -> torch.Tensor:
    """MatConvNet's LRN (``vl_nnnormalize``) of an ``N x C x H x W`` tensor: the function
    the ``dagnn.LRN`` layer runs.

    ``y_c = x_c * (kappa + alpha * sum_{q=c-m1}^{c+m2} x_q^2) ^ (-beta)``, the window of
    :func:`lrn_window` clipped at the channel ends, alpha NOT divided by ``depth``.
    ``mode="exact"``: that formula with a true pow, in the input's precision
    (MatConvNet's GPU code); ``mode="fast"``: MatConvNet's CPU code, bit for bit
    (:func:`matconv_port.layers.lrn_fastpow.lrn_cpu`: running window sum and the
    approximated pow, ~0.3% from the formula). Differentiable in both modes."""
    if x.dim() != 4:
        raise ValueError(f"LRN expects an N x C x H x W tensor, got shape {tuple(x.shape)}")
    if mode not in ("fast", "exact"):
        raise ValueError(f"LRN mode must be 'fast' or 'exact', got {mode!r}")
    if not torch.is_floating_point(x):
        raise TypeError(f"LRN needs a floating-point tensor, got {x.dtype}")
    m1, m2 = lrn_window(depth)
    if mode == "fast":
        from matconv_port.layers.lrn_fastpow import lrn_cpu

        return lrn_cpu(x, m1, m2, kappa, alpha, beta)
    sq = F.pad((x * x).unsqueeze(1), (0, 0, 0, 0, m1, m2))  # N x 1 x C+m1+m2 x H x W
    window = F.avg_pool3d(sq, (depth, 1, 1), stride=1).squeeze(1) * depth
    return x * torch.pow(kappa + alpha * window, -beta)


@register_layer("dagnn.LRN", simplenn=("normalize", "lrn"))
class LRN(SameShapeLayer):
    def __init__(self, spec):
        super().__init__(spec)
        param = self.block_list("param", [5, 1, 1e-4 / 5, 0.75])
        if len(param) != 4:
            raise ShapeError(f"layer {self.layer_name!r}: LRN param must be [N kappa alpha beta], got {param}")
        self.depth = int(round(param[0]))
        self.kappa, self.alpha, self.beta = param[1], param[2], param[3]

    def forward(self, inputs, params, ctx: ForwardContext):
        return [lrn(inputs[0], self.depth, self.kappa, self.alpha, self.beta, ctx.lrn_mode)]


@register_layer("dagnn.BatchNorm", simplenn="bnorm")
class BatchNorm(MatConvNetLayer):
    param_layouts = ("vector", "vector", "raw")

    def __init__(self, spec):
        super().__init__(spec)
        self.epsilon = self.block_float("epsilon", 1e-4)
        self.has_moments = len(spec.params) >= 3

    def configure_semantics(self, semantics: str, source_format: str) -> list[str]:
        """Epsilon (used with batch moments only): a DagNN block's own ``epsilon``, else
        the class default of that MatConvNet (fork 1e-4, stock 1e-5); a SimpleNN ``bnorm``:
        the fork's ``vl_simplenn`` passes no epsilon (1e-4), stock's passes the layer's
        (``vl_simplenn_tidy`` default 1e-5)."""
        from matconv_port.semantics import BNORM_EPSILON, SIMPLENN_BNORM_EPSILON

        messages = super().configure_semantics(semantics, source_format)
        if source_format == "simplenn":
            own = self.block.get("simplennEpsilon")
            self.epsilon = float(own) if semantics == "stock" and isinstance(own, (int, float)) \
                else SIMPLENN_BNORM_EPSILON[semantics]
        else:
            own = self.block.get("epsilon")
            self.epsilon = self.block_float("epsilon", BNORM_EPSILON[semantics]) if own not in (None, []) \
                else BNORM_EPSILON[semantics]
        return messages

    def output_shapes(self, input_shapes: list[Shape], param_shapes: list[Shape], ctx: ForwardContext) -> list[Shape]:
        x = input_shapes[0]
        c = x[1]
        g, b = (int(np.prod(s)) for s in param_shapes[:2])
        if g != c or b != c:
            raise ShapeError(f"layer {self.layer_name!r}: {g} multipliers for {c} channels")
        if self.has_moments and not ctx.training:
            m = param_shapes[2]
            rows = m[0] if len(m) == 2 else int(np.prod(m)) // 2
            if rows != c:
                raise ShapeError(f"layer {self.layer_name!r}: moments for {rows} channels, input has {c}")
        return [tuple(x)]

    def forward(self, inputs, params, ctx: ForwardContext):
        x = inputs[0]
        g, b = params[0], params[1]
        c = x.shape[1]
        if g.numel() != c or b.numel() != c:
            raise ShapeError(f"layer {self.layer_name!r}: {g.numel()} multipliers for {c} channels")
        if ctx.training or not self.has_moments:
            mean = x.mean(dim=(0, 2, 3))
            var = ((x - mean.view(1, -1, 1, 1)) ** 2).mean(dim=(0, 2, 3))
            sigma = torch.sqrt(var + self.epsilon)
            if ctx.training and self.has_moments:
                ctx.batch_moments[self.layer_name] = torch.stack([mean, sigma], dim=1).detach()
        else:
            moments = params[2].reshape(-1, 2) if params[2].dim() != 2 else params[2]
            if moments.shape[0] != c:
                raise ShapeError(f"layer {self.layer_name!r}: moments for {moments.shape[0]} channels, input has {c}")
            mean, sigma = moments[:, 0], moments[:, 1]
        scale = (g / sigma).view(1, -1, 1, 1)
        return [(x - mean.view(1, -1, 1, 1)) * scale + b.view(1, -1, 1, 1)]
