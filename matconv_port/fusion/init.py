"""Initial values of the fusion filters, as the original code computes them.

Two filters exist in ``cnn_ucf101_fusion.m``:

* the 1x1 2-D fusion conv of ``network_surgery/insert_conv_layers.m``
  (``H x W x 2C x C``, single), initialised by ``initMethod``
  (:data:`INIT_METHODS`); input channels: tower A (spatial) first, then B;
* the Conv3D fusion filter ``conv3Df`` (``3 x 3 x 3 x 2C x C``): the script
  hard-codes ``[0.25 * I; 0.75 * I]`` times a normalised 3x3x3 Gaussian (sigma 1),
  whatever ``initMethod`` says. This port uses that exact value for the default
  ``2sumAB`` and, as an extension, ``init_weight(method, 1, 1, 2C, C)`` times the same
  Gaussian for the other methods.

Deterministic methods give MATLAB's values bit for bit (single precision; the
Gaussian is computed in double and converted to single before the product, as
MATLAB/Octave do for mixed single/double products). Random methods (``classic``,
``xavierimproved``...) follow the same distributions with NumPy's generator: their
values cannot equal MATLAB's ``randn`` stream.
"""
from __future__ import annotations

import math

import numpy as np

from matconv_port.errors import MatConvPortError

#: initMethod values of insert_conv_layers.m; the first five are deterministic
DETERMINISTIC_METHODS = ("sumAB", "2sumAB", "100sumAB", "netA", "netB", "uniformly")
RANDOM_METHODS = ("classic", "Xavier", "xavierimproved", "xavierimproved_down_scaled", "xavierimprovedB100",
                  "sum+xavierimprovedB100", "diagA+Bxavierimproved", "netAclassicNetBdiag")
INIT_METHODS = DETERMINISTIC_METHODS + RANDOM_METHODS


def _diag(in_half: int, out: int) -> np.ndarray:
    """``permute(eye(in/2, out, 'single'), [3 4 1 2])``: 1 x 1 x in/2 x out."""
    return np.eye(in_half, out, dtype=np.float32)[None, None]


def _blocks(in_a: int, in_b: int, out: int, wa: float, wb: float) -> np.ndarray:
    """``cat(3, wa * diagA, wb * diagB)`` (1 x 1 x (in_a + in_b) x out, single)."""
    a = np.float32(wa) * np.eye(in_a, out, dtype=np.float32)
    b = np.float32(wb) * np.eye(in_b, out, dtype=np.float32)
    return np.concatenate([a, b], axis=0)[None, None].astype(np.float32)


def init_weight(method: str, h: int, w: int, in_channels: int, out: int, *,
                rng: np.random.Generator | None = None, in_a: int | None = None) -> np.ndarray:
    """``init_weight`` of insert_conv_layers.m: an ``h x w x in x out`` single filter.

    ``in_a``: input channels of tower A (default ``in / 2``, as the original, which
    assumes equal widths); the identity blocks then cover ``in_a`` and ``in - in_a``
    channels."""
    rng = rng or np.random.default_rng(0)
    in_a = in_channels // 2 if in_a is None else int(in_a)
    in_b = in_channels - in_a
    f32 = np.float32

    def randn(*shape):
        return rng.standard_normal(shape).astype(f32)

    def tile(block: np.ndarray) -> np.ndarray:  # a 1x1 pattern broadcast over h x w
        return np.broadcast_to(block, (h, w) + block.shape[2:]).astype(f32)

    sc = math.sqrt(2.0 / (h * w * out))
    if method == "classic":
        return (f32(0.01) * randn(h, w, in_channels, out)).astype(f32)
    if method == "Xavier":
        s = math.sqrt(3.0 / (h * w * in_channels))
        return ((rng.random((h, w, in_channels, out)).astype(f32) * 2 - 1) * f32(s)).astype(f32)
    if method == "xavierimproved":
        return (f32(sc) * randn(h, w, in_channels, out)).astype(f32)
    if method == "xavierimproved_down_scaled":
        return (f32(sc) * randn(h, w, in_channels, out) / f32(10)).astype(f32)
    if method == "xavierimprovedB100":
        return np.concatenate([f32(sc) * randn(h, w, in_a, out), f32(sc) * randn(h, w, in_b, out) * f32(100)],
                              axis=2).astype(f32)
    if method == "sum+xavierimprovedB100":
        w1 = f32(sc) * randn(h, w, in_a, out)
        w2 = f32(sc) * randn(h, w, in_b, out) * f32(100)
        return np.concatenate([f32(1 / 100) * tile(_blocks(in_a, 0, out, 1, 0)) + w1,
                               tile(_blocks(in_b, 0, out, 1, 0)) + w2], axis=2).astype(f32)
    if method == "diagA+Bxavierimproved":
        return np.concatenate([tile(_blocks(in_a, 0, out, 1, 0)), f32(sc) * randn(h, w, in_b, out)], axis=2).astype(f32)
    if method == "uniformly":
        return np.full((h, w, in_channels, out), f32(1.0 / (h * w * in_channels)), dtype=f32)
    if method == "netAclassicNetBdiag":
        return np.concatenate([f32(0.01) * randn(h, w, in_a, out), tile(_blocks(in_b, 0, out, 1, 0))],
                              axis=2).astype(f32)
    weights = {"netA": (1, 0), "netB": (0, 1), "sumAB": (1, 1), "2sumAB": (0.25, 0.75), "100sumAB": (1 / 100, 1)}
    if method not in weights:
        raise MatConvPortError(f"unknown fusion init method {method!r} (known: {', '.join(INIT_METHODS)})")
    wa, wb = weights[method]
    return tile(_blocks(in_a, in_b, out, wa, wb))


def gaussian3(sigma: float = 1.0) -> np.ndarray:
    """The script's normalised 3x3x3 Gaussian (double), ``G3 ./ sum(G3(:))``, summed in
    MATLAB's column-major order."""
    g = np.zeros((3, 3, 3), dtype=np.float64)
    s2 = sigma * sigma
    for i in range(3):
        for j in range(3):
            for k in range(3):
                x, y, z = i - 1, j - 1, k - 1
                g[i, j, k] = math.exp(-((x * x) / s2 + (y * y) / s2 + (z * z) / s2) / 2)
    total = 0.0
    for v in g.reshape(-1, order="F"):
        total += v
    return g / total


def conv3d_fusion_filter(in_a: int, in_b: int, out: int, method: str = "2sumAB", *,
                         rng: np.random.Generator | None = None, sigma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``conv3Df`` (``3 x 3 x 3 x (in_a + in_b) x out``, single) and ``conv3Db``
    (``1 x out`` zeros) as cnn_ucf101_fusion.m builds them (see the module docstring)."""
    base = init_weight(method, 1, 1, in_a + in_b, out, rng=rng, in_a=in_a)  # 1 x 1 x in x out
    g = gaussian3(sigma).astype(np.float32)
    kernel = (base[0, 0][None, None, None] * g[..., None, None]).astype(np.float32)
    return kernel, np.zeros((1, out), dtype=np.float32)
