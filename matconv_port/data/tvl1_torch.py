"""Batched TV-L1 optical flow in PyTorch (CPU and GPU): the energy and the numerical
scheme of OpenCV contrib's ``cv::optflow::DualTVL1OpticalFlow`` (``tvl1flow.cpp``).

The method is Zach, Pock, Bischof, "A duality based approach for realtime TV-L1
optical flow" (DAGM 2007) as described by Sanchez, Meinhardt-Llopis, Facciolo,
"TV-L1 optical flow estimation" (IPOL 2013), with OpenCV's choices, reimplemented here
from its documented behaviour:

* grey images as float 0..255; a pyramid of ``nscales`` levels, each level the previous
  one resized by ``scale_step`` with bilinear interpolation (``cv::resize`` INTER_LINEAR:
  output size ``round(s * size)``, source coordinate ``(x + 0.5) / s - 0.5``, clamped at
  the borders, no pre-smoothing); levels smaller than 16 pixels are dropped;
* per level, ``warps`` times: warp ``I1`` and its centred gradient (one-sided at the
  borders) by the current flow with bicubic interpolation (``cv::remap`` INTER_CUBIC,
  a = -0.75, exact float positions as OpenCV 5's remap (4.x rounds them to 1/32 pixel),
  pixels outside the image = 0), then
  at most ``outer_iterations`` x ``inner_iterations`` primal-dual iterations:
  thresholding step ``v = u + TH(rho)`` (``lambda * theta``), ``u = v + theta div p``,
  ``p = (p + tau/theta grad u) / (1 + tau/theta |grad u|)`` (forward differences,
  the adjoint divergence), a 5x5 median of ``u`` (replicated borders) before every
  outer iteration; a pair stops iterating in this warp once the sum over pixels of
  ``|u_new - u_old|^2`` is at most ``epsilon^2 * area``;
* the flow is upsampled to the next level bilinearly and multiplied by ``1/scale_step``.

All pairs of a batch run the same loop; a pair that has converged keeps its values
(its updates are masked), so each pair gets exactly its own iteration count, as if
computed alone. Only ``gamma = 0`` (OpenCV's default; no illumination term) is
implemented.

One deviation, documented: where ``|grad I1w|^2 <= FLT_EPSILON`` OpenCV's threshold
step gives ``+-lambda theta grad I1w`` or 0; here it is 0 (the difference is below
``lambda theta sqrt(FLT_EPSILON)`` = 2e-5 pixel per step, in flat regions only).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from matconv_port.errors import DataError

#: Levels below this size (either side) are not used (as OpenCV).
_MIN_LEVEL_SIZE = 16
_FLT_EPSILON = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class TVL1Params:
    """The parameters of OpenCV's ``DualTVL1OpticalFlow_create()`` with its defaults, which
    ``--flow tvl1`` uses; the names follow OpenCV's getters."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5

    def check(self) -> None:
        if self.gamma != 0.0:
            raise DataError(f"TV-L1 gamma={self.gamma}: only gamma=0 (OpenCV's default) is implemented")
        if self.median_filtering not in (0, 1, 3, 5):
            raise DataError(f"TV-L1 median_filtering={self.median_filtering}: use 0/1 (off), 3 or 5")
        if self.nscales < 1 or self.warps < 1 or not 0.0 < self.scale_step < 1.0:
            raise DataError(f"TV-L1 parameters {self}: need nscales >= 1, warps >= 1, 0 < scale_step < 1")


DEFAULT_PARAMS = TVL1Params()


def _cv_round(x: float) -> int:
    return int(np.rint(x))


def pyramid_sizes(height: int, width: int, params: TVL1Params = DEFAULT_PARAMS) -> list[tuple[int, int]]:
    """Sizes ``(h, w)`` of the levels OpenCV uses, finest first."""
    sizes = [(int(height), int(width))]
    for _ in range(1, params.nscales):
        h, w = sizes[-1]
        nh, nw = _cv_round(h * params.scale_step), _cv_round(w * params.scale_step)
        if nh < _MIN_LEVEL_SIZE or nw < _MIN_LEVEL_SIZE:
            break
        sizes.append((nh, nw))
    return sizes


def _linear_taps(n_in: int, n_out: int, scale: float, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices and weights of ``cv::resize`` INTER_LINEAR along one axis; ``scale`` = in/out."""
    f = (np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5
    f = f.astype(np.float32).astype(np.float64)
    i0 = np.floor(f)
    w = (f - i0).astype(np.float32)
    w[i0 < 0] = 0.0
    w[i0 >= n_in - 1] = 0.0
    i1 = np.clip(i0 + 1, 0, n_in - 1).astype(np.int64)
    i0 = np.clip(i0, 0, n_in - 1).astype(np.int64)
    t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    return t(i0), t(i1), t(w)


def resize_linear(x: torch.Tensor, size: tuple[int, int], scale: tuple[float, float] | None = None) -> torch.Tensor:
    """``cv::resize(..., INTER_LINEAR)`` of a ``B x H x W`` float tensor to ``size = (h, w)``.
    ``scale = (sy, sx)`` (input/output) as OpenCV takes it from ``fx, fy``; default the size ratio."""
    _, h_in, w_in = x.shape
    h, w = size
    sy, sx = scale if scale is not None else (h_in / h, w_in / w)
    y0, y1, wy = _linear_taps(h_in, h, sy, x.device)
    x0, x1, wx = _linear_taps(w_in, w, sx, x.device)
    rows = torch.lerp(x.index_select(1, y0), x.index_select(1, y1), wy.view(1, -1, 1))
    return torch.lerp(rows.index_select(2, x0), rows.index_select(2, x1), wx.view(1, 1, -1))


def centered_gradient(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred differences ``(I[x+1] - I[x-1]) / 2``; one-sided halves at the borders (as OpenCV)."""
    p = F.pad(img.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1)
    dx = 0.5 * (p[:, 1:-1, 2:] - p[:, 1:-1, :-2])
    dy = 0.5 * (p[:, 2:, 1:-1] - p[:, :-2, 1:-1])
    return dx, dy


def _divergence_into(out: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """``div p`` into ``out``: backward differences with ``p[-1] = 0`` (OpenCV's ``divergence``),
    the negative adjoint of the forward differences (0 on the last column/row) of the dual step."""
    out[:, :, 0].copy_(px[:, :, 0])
    torch.sub(px[:, :, 1:], px[:, :, :-1], out=out[:, :, 1:])
    out.add_(py)
    out[:, 1:, :].sub_(py[:, :-1, :])
    return out


def _batcher_network(n: int) -> list[tuple[int, int]]:
    """Comparators ``(i, j)`` (``i < j``: min to ``i``, max to ``j``) of Batcher's odd-even
    merge sort of ``n`` (a power of two) wires."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


@lru_cache(maxsize=None)
def _median_plan(count: int) -> tuple[int, tuple[tuple[int, int, bool, bool], ...]]:
    """``(wires, comparators)``: the comparators that a sorting network of ``count`` inputs
    (padded with +inf to ``wires``, a power of two) needs for its middle output, as
    ``(i, j, need_min, need_max)``."""
    n = 1
    while n < count:
        n *= 2
    network = _batcher_network(n)
    need = {count // 2}
    plan = []
    for i, j in reversed(network):
        want_min, want_max = i in need, j in need
        if want_min or want_max:
            plan.append((i, j, want_min, want_max))
            need.update((i, j))
    return n, tuple(reversed(plan))


def median_blur(u: torch.Tensor, ksize: int) -> torch.Tensor:
    """``cv::medianBlur`` of float ``B x H x W`` (``ksize`` 3 or 5, replicated borders).

    A selection network on the ``ksize**2`` shifted images (elementwise min/max only: no
    sort per pixel, fast on GPU and CPU): Batcher's sorting network padded with +inf, pruned
    to the comparators the middle output depends on."""
    r = ksize // 2
    h, w = u.shape[1:]
    p = F.pad(u.unsqueeze(1), (r, r, r, r), mode="replicate").squeeze(1)
    wires: list = [p[:, dy:dy + h, dx:dx + w] for dy in range(ksize) for dx in range(ksize)]
    count = len(wires)
    n, plan = _median_plan(count)
    wires += [None] * (n - count)  # None = +inf padding
    for i, j, want_min, want_max in plan:
        a, b = wires[i], wires[j]
        if b is None:  # min(a, inf) = a, max = inf: nothing moves
            continue
        if a is None:
            wires[i], wires[j] = b, None
            continue
        wires[i] = torch.minimum(a, b) if want_min else None
        wires[j] = torch.maximum(a, b) if want_max else None
    return wires[count // 2].contiguous()


class _Warper:
    """Bicubic warping of ``I1`` and its gradient by a flow, as ``cv::remap`` INTER_CUBIC with
    a constant 0 border; the base grid is built once per level."""

    def __init__(self, height: int, width: int, device: torch.device):
        self.h, self.w = height, width
        self.ys = torch.arange(height, device=device, dtype=torch.float32).view(1, -1, 1)
        self.xs = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, -1)
        self.sx = 2.0 / max(width - 1, 1)
        self.sy = 2.0 / max(height - 1, 1)

    def __call__(self, stack: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
        grid = torch.stack(((self.xs + u1) * self.sx - 1.0, (self.ys + u2) * self.sy - 1.0), dim=-1)
        return F.grid_sample(stack, grid, mode="bicubic", padding_mode="zeros", align_corners=True)


def _one_scale(I0: torch.Tensor, I1: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor,
               params: TVL1Params, check_every: int, stats: dict | None) -> None:
    """TV-L1 at one pyramid level, updating ``u1``/``u2`` (``B x h x w``) in place."""
    b, h, w = I0.shape
    scaled_eps = float(params.epsilon) ** 2 * h * w
    l_t = float(params.lambda_ * params.theta)
    taut = float(params.tau / params.theta)
    theta = float(params.theta)
    med = params.median_filtering if params.median_filtering > 1 else 0
    I1x, I1y = centered_gradient(I1)
    stack = torch.stack((I1, I1x, I1y), dim=1)
    warp = _Warper(h, w, I0.device)
    p11, p12, p21, p22 = (torch.zeros_like(u1) for _ in range(4))
    # work buffers, allocated once per level; the forward gradients' last column/row stay 0
    ux1, uy1, ux2, uy2 = (torch.zeros_like(u1) for _ in range(4))
    div1, div2, ng, d = (torch.empty_like(u1) for _ in range(4))
    for _ in range(params.warps):
        warped = warp(stack, u1, u2)
        I1w, I1wx, I1wy = warped[:, 0], warped[:, 1], warped[:, 2]
        grad = I1wx * I1wx + I1wy * I1wy
        rho_c = I1w - I1wx * u1 - I1wy * u2 - I0
        # -1/|grad I1w|^2 (0 where it is below FLT_EPSILON: see the module docstring)
        neg_inv_grad = torch.where(grad > _FLT_EPSILON, -1.0 / grad.clamp_min(_FLT_EPSILON), torch.zeros_like(grad))
        del warped, I1w, grad
        active = torch.ones(b, dtype=torch.bool, device=I0.device)  # OpenCV: error = FLT_MAX before the loop
        n = 0
        done = False
        for _outer in range(params.outer_iterations):
            if med:
                m = active.view(-1, 1, 1)
                u1.copy_(torch.where(m, median_blur(u1, med), u1))
                u2.copy_(torch.where(m, median_blur(u2, med), u2))
            for _inner in range(params.inner_iterations):
                # a converged pair gets m = 0: its u and p stay as they are
                m = active.view(-1, 1, 1).to(u1.dtype)
                tm = m * taut
                # thresholding step: v = u + d grad I1w, d = clamp(-rho / |grad I1w|^2, +-lambda theta)
                torch.addcmul(rho_c, I1wx, u1, out=d).addcmul_(I1wy, u2).mul_(neg_inv_grad).clamp_(-l_t, l_t)
                # u_new - u = d grad I1w + theta div p
                _divergence_into(div1, p11, p12)
                _divergence_into(div2, p21, p22)
                du1 = div1.mul_(theta).addcmul_(d, I1wx)
                du2 = div2.mul_(theta).addcmul_(d, I1wy)
                err = torch.mul(du1, du1).addcmul_(du2, du2).sum(dim=(1, 2))
                u1.addcmul_(du1, m)
                u2.addcmul_(du2, m)
                # dual step: p = (p + tau/theta grad u) / (1 + tau/theta |grad u|)
                for px, py, ux, uy, u in ((p11, p12, ux1, uy1, u1), (p21, p22, ux2, uy2, u2)):
                    torch.sub(u[:, :, 1:], u[:, :, :-1], out=ux[:, :, :-1])
                    torch.sub(u[:, 1:, :], u[:, :-1, :], out=uy[:, :-1, :])
                    torch.hypot(ux, uy, out=ng).mul_(tm).add_(1.0)
                    px.addcmul_(ux, tm).div_(ng)
                    py.addcmul_(uy, tm).div_(ng)
                active = active & (err > scaled_eps)
                n += 1
                if n % check_every == 0 and not bool(active.any()):
                    done = True
                    break
            if done:
                break
        if stats is not None:
            stats["iterations"] = stats.get("iterations", 0) + n


def _as_batch(x, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3:
        raise DataError(f"TV-L1 input of shape {tuple(t.shape)}: expected B x H x W grey images")
    return t.to(device=device, dtype=torch.float32, non_blocking=True)


@torch.no_grad()
def tvl1_flow(prev, nxt, params: TVL1Params = DEFAULT_PARAMS, device: str | torch.device | None = None,
              check_every: int = 10, stats: dict | None = None) -> torch.Tensor:
    """TV-L1 flow from ``prev`` to ``nxt`` (``B x H x W`` or ``H x W`` grey images, uint8 or
    float in 0..255; numpy or torch) -> ``B x H x W x 2`` float32 (``[..., 0] = u`` right,
    ``[..., 1] = v`` down), on ``device`` (default: that of ``prev`` if a tensor, else CPU).

    ``check_every``: how many iterations between the checks "has every pair converged?"
    (each is a GPU->CPU synchronisation); it does not change the result.
    """
    params.check()
    if device is None:
        device = prev.device if isinstance(prev, torch.Tensor) else torch.device("cpu")
    device = torch.device(device)
    I0 = _as_batch(prev, device)
    I1 = _as_batch(nxt, device)
    if I0.shape != I1.shape:
        raise DataError(f"TV-L1: frames of different shapes {tuple(I0.shape)} and {tuple(I1.shape)}")
    b, h, w = I0.shape
    if h < 3 or w < 3:
        raise DataError(f"TV-L1: frames of {h}x{w} pixels are too small (at least 3x3)")
    sizes = pyramid_sizes(h, w, params)
    s = float(params.scale_step)
    I0s, I1s = [I0], [I1]
    for size in sizes[1:]:
        I0s.append(resize_linear(I0s[-1], size, (1.0 / s, 1.0 / s)))
        I1s.append(resize_linear(I1s[-1], size, (1.0 / s, 1.0 / s)))
    hc, wc = sizes[-1]
    u1 = torch.zeros((b, hc, wc), device=device, dtype=torch.float32)
    u2 = torch.zeros_like(u1)
    for level in range(len(sizes) - 1, -1, -1):
        _one_scale(I0s[level], I1s[level], u1, u2, params, max(int(check_every), 1), stats)
        if level == 0:
            break
        size = sizes[level - 1]
        u1 = resize_linear(u1, size).mul_(1.0 / s)
        u2 = resize_linear(u2, size).mul_(1.0 / s)
    return torch.stack((u1, u2), dim=-1)


class TVL1Torch:
    """``flow(prev_gray, next_gray) -> H x W x 2`` numpy (the :data:`~matconv_port.data.flow.FlowFunction`
    interface) and :meth:`video` for many pairs at once, on one ``device``."""

    def __init__(self, device: str | torch.device = "cpu", params: TVL1Params = DEFAULT_PARAMS):
        params.check()
        self.device = torch.device(device)
        self.params = params

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return tvl1_flow(prev, nxt, self.params, self.device)[0].cpu().numpy()

    def pairs(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """Flow of ``B`` pairs (``B x H x W`` each) -> ``B x H x W x 2`` numpy."""
        return tvl1_flow(prev, nxt, self.params, self.device).cpu().numpy()

    def consecutive(self, frames: np.ndarray) -> np.ndarray:
        """Flow between consecutive frames of ``N x H x W`` -> ``(N-1) x H x W x 2`` numpy."""
        t = torch.as_tensor(np.ascontiguousarray(frames)).to(self.device)
        return tvl1_flow(t[:-1], t[1:], self.params, self.device).cpu().numpy()
