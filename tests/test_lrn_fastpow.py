"""MatConvNet LRN (``normalization.lrn``, the function the LRN layer runs; its CPU emulation
in ``lrn_fastpow``) against MatConvNet outputs.

Ground truth: LRN layers of the shared reference fixtures (``fixtures/reference``) and of
our own MatConvNet-computed fixtures (``fixtures/generated``, see fixtures/README.md), all
computed by the CPU ``vl_nnnormalize`` (``VL_NNNORMALIZE_FAST``). Each LRN layer is fed its
stored input and compared with its stored output.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import torch

from matconv_port.layers.lrn_fastpow import fast_pow
from matconv_port.layers.normalization import lrn, lrn_window

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REFERENCE = FIXTURES / "reference"
GENERATED = FIXTURES / "generated"

# fast mode reproduces the CPU code bit for bit in practice; allow a few ulps
FAST_RTOL = 1e-6
EXACT_RTOL = 1e-6


def _approx_bound(beta: float) -> float:
    """Max elementwise relative error of fast_pow(z, -beta) vs pow (measured: 0.15% at
    beta .25, 0.33% at .75, 0.53% at 1.3, 0.74% at 2), with some margin."""
    return 1.5e-3 + 3.2e-3 * abs(beta)


def _to_torch(a: np.ndarray) -> torch.Tensor:
    """MatConvNet H x W x C x N -> torch N x C x H x W (trailing singleton dims restored)."""
    a = np.asarray(a)
    while a.ndim < 4:
        a = a[..., None]
    return torch.from_numpy(np.ascontiguousarray(a.transpose(3, 2, 0, 1)))


def _to_mcn(t: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray:
    return t.numpy().transpose(2, 3, 1, 0).reshape(shape)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b| (the fixtures' README convention)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def _field(s, name):
    return s[name][0, 0]


def _simplenn_lrn_cases(path: Path):
    """(id, x, param, y, y_exact or None) for each normalize/lrn layer of a SimpleNN fixture."""
    d = sio.loadmat(str(path))
    layers = d["net"]["layers"][0, 0][0]
    res_x = d["res_x"][0]
    names = [str(n[0]) for n in d["output_order"][0]]
    exact = d.get("lrn_exact_formula")
    for i, layer in enumerate(layers):
        layer = layer[0, 0]
        if str(layer["type"][0]) not in ("normalize", "lrn"):
            continue
        var = names[i + 1]
        y_exact = exact[var][0, 0] if exact is not None and var in exact.dtype.names else None
        yield (f"{path.stem}:{var}", res_x[i], layer["param"].ravel(), res_x[i + 1], y_exact)


def _dagnn_lrn_cases(path: Path):
    """(id, x, param, y, None) for each dagnn.LRN layer of a DagNN fixture."""
    d = sio.loadmat(str(path))
    net = d["net"][0, 0]
    outputs = d["outputs"][0, 0]
    for layer in net["layers"][0]:
        if str(layer["type"][0]) != "dagnn.LRN":
            continue
        x = outputs[str(layer["inputs"][0, 0][0])]
        y = outputs[str(layer["outputs"][0, 0][0])]
        param = layer["block"][0, 0]["param"].ravel()
        yield (f"{path.stem}:{layer['name'][0]}", x, param, y, None)


def _all_layer_cases():
    cases = []
    for name in ("simplenn_chain_a.mat", "simplenn_chain_b.mat"):
        cases += list(_simplenn_lrn_cases(REFERENCE / name))
    cases += list(_dagnn_lrn_cases(REFERENCE / "dagnn_misc_a.mat"))
    cases += list(_simplenn_lrn_cases(GENERATED / "simplenn_normalize.mat"))
    cases += list(_dagnn_lrn_cases(GENERATED / "dagnn_conv_concat_sum_scale.mat"))
    cases += list(_dagnn_lrn_cases(GENERATED / "dagnn_from_simplenn.mat"))
    return cases


LAYER_CASES = _all_layer_cases()


def test_fixture_inventory():
    # 1 + 1 + 1 shared LRN layers, 6 in simplenn_normalize, 1 in each of two DagNN fixtures
    assert len(LAYER_CASES) == 11


@pytest.mark.parametrize("case", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_fast_mode_matches_matconvnet_cpu(case):
    _, x, param, y, _ = case
    depth, kappa, alpha, beta = (int(param[0]), float(param[1]), float(param[2]), float(param[3]))
    out = _to_mcn(lrn(_to_torch(x), depth, kappa, alpha, beta, mode="fast"), y.shape)
    assert out.dtype == np.float32
    assert _rel(out, y) <= FAST_RTOL


@pytest.mark.parametrize("case", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_exact_mode_is_the_formula_not_the_approximation(case):
    _, x, param, y, y_exact = case
    depth, kappa, alpha, beta = (int(param[0]), float(param[1]), float(param[2]), float(param[3]))
    out = _to_mcn(lrn(_to_torch(x), depth, kappa, alpha, beta, mode="exact"), y.shape)
    if y_exact is not None:
        assert _rel(out, y_exact) <= EXACT_RTOL
    # the CPU approximation is visibly different from exact pow, but within its error bound
    rel_elem = np.abs(out.astype(np.float64) - y) / np.maximum(np.abs(y), 1e-30)
    assert rel_elem[np.abs(y) > 1e-3 * np.abs(y).max()].max() < _approx_bound(beta)
    assert _rel(out, y) > 10 * FAST_RTOL


def _raw_cases():
    d = sio.loadmat(str(GENERATED / "raw" / "vl_nnnormalize_cases.mat"))
    n = d["x"].shape[1]
    return [
        (d["param"][0, i].ravel(), d["x"][0, i], d["y"][0, i], d["y_exact"][0, i])
        for i in range(n)
    ]


RAW_CASES = _raw_cases()


@pytest.mark.parametrize("idx", range(len(RAW_CASES)))
def test_raw_vl_nnnormalize_cases_single_and_double(idx):
    param, x, y, y_exact = RAW_CASES[idx]
    assert x.dtype in (np.float32, np.float64) and y.dtype == x.dtype
    depth, kappa, alpha, beta = (int(param[0]), float(param[1]), float(param[2]), float(param[3]))
    xt = _to_torch(x)
    fast = _to_mcn(lrn(xt, depth, kappa, alpha, beta, mode="fast"), y.shape)
    exact = _to_mcn(lrn(xt, depth, kappa, alpha, beta, mode="exact"), y.shape)
    assert fast.dtype == x.dtype
    assert _rel(fast, y) <= (FAST_RTOL if x.dtype == np.float32 else 1e-13)
    assert _rel(exact, y_exact) <= (EXACT_RTOL if x.dtype == np.float32 else 1e-13)


def test_fast_mode_is_bitwise_on_all_fixtures():
    # the emulation follows the compiled CPU code operation for operation
    for _, x, param, y, _ in LAYER_CASES:
        out = lrn(_to_torch(x), int(param[0]), *map(float, param[1:4]), mode="fast")
        assert np.array_equal(_to_mcn(out, y.shape), y)
    for param, x, y, _ in RAW_CASES:
        out = lrn(_to_torch(x), int(param[0]), *map(float, param[1:4]), mode="fast")
        assert np.array_equal(_to_mcn(out, y.shape), y)


def test_running_window_sum_residue_is_reproduced():
    # last raw case pair: channels 1-3 huge, 4-9 tiny. In single precision the CPU running
    # sum keeps the rounding residue of the huge squares, so its output is far from the
    # formula on the later channels; a fresh window sum cannot reproduce it.
    param, x, y, y_exact = RAW_CASES[-2]
    assert x.dtype == np.float32
    late = (slice(None), slice(None), slice(5, None), slice(None))
    assert _rel(y[late], y_exact[late]) > 0.1
    xt = _to_torch(x)
    fast = _to_mcn(lrn(xt, int(param[0]), *map(float, param[1:4]), mode="fast"), y.shape)
    assert np.array_equal(fast, y)


def test_raw_cases_cover_both_precisions():
    dtypes = {c[1].dtype for c in RAW_CASES}
    assert dtypes == {np.dtype(np.float32), np.dtype(np.float64)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_pow_is_exact_where_the_polynomials_vanish(dtype):
    # base = 2^k: mantissa 0, so log2 is exactly k; exponent*k integer: 2^(exponent*k) exactly
    k = torch.arange(-20, 21, dtype=dtype)
    base = torch.pow(torch.tensor(2.0, dtype=dtype), k)
    for exponent in (-1.0, -0.5, 2.0):
        want = torch.pow(torch.tensor(2.0, dtype=dtype), k * exponent)
        sel = (k * exponent) == torch.round(k * exponent)
        got = fast_pow(base, exponent)
        assert got.dtype == dtype
        assert torch.equal(got[sel], want[sel])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_pow_approximates_pow(dtype):
    base = torch.exp(torch.linspace(-15, 15, 10001, dtype=torch.float64)).to(dtype)
    for exponent in (-0.75, -0.5, -1.3, -0.25):
        got = fast_pow(base, exponent).double()
        want = torch.pow(base.double(), exponent)
        rel = ((got - want).abs() / want).max().item()
        assert 1e-5 < rel < _approx_bound(exponent), (exponent, rel)


def test_fast_pow_is_elementwise_and_keeps_shape():
    base = torch.rand(3, 4, 5, dtype=torch.float32) + 0.1
    got = fast_pow(base, -0.75)
    assert got.shape == base.shape
    assert torch.equal(got[1, 2], fast_pow(base[1, 2].clone(), -0.75))
    # non-contiguous input
    assert torch.equal(fast_pow(base.transpose(0, 2), -0.75), got.transpose(0, 2))


def test_fast_pow_rejects_integers():
    with pytest.raises(TypeError):
        fast_pow(torch.arange(3), 0.5)


@pytest.mark.parametrize("depth,expected", [(1, (0, 0)), (2, (0, 1)), (4, (1, 2)), (5, (2, 2)), (6, (2, 3))])
def test_window_is_asymmetric_for_even_depth(depth, expected):
    assert lrn_window(depth) == expected


def test_even_depth_window_direction():
    # one-hot channel c0: y_c is reduced exactly where c0 lies in c's window [c-m1, c+m2]
    x = torch.zeros(1, 6, 1, 1, dtype=torch.float64)
    x[0, :, 0, 0] = 1.0
    x[0, 3, 0, 0] = 10.0
    y = lrn(x, 4, 1.0, 1.0, 1.0, mode="exact")[0, :, 0, 0]
    # depth 4: m1 = 1, m2 = 2 -> channel 3 is in the windows of channels 1, 2, 3, 4
    big = [c for c in range(6) if c != 3 and y[c] < 0.1]
    assert big == [1, 2, 4]


def test_alpha_is_not_divided_by_depth():
    x = torch.randn(2, 7, 3, 3, dtype=torch.float64)
    ours = lrn(x, 5, 2.0, 0.1, 0.75, mode="exact")
    # torch divides alpha by size: pass alpha * size to get MatConvNet's formula
    ref = torch.nn.functional.local_response_norm(x, 5, alpha=0.1 * 5, beta=0.75, k=2.0)
    assert torch.allclose(ours, ref, rtol=1e-12, atol=0)


def test_fast_and_exact_modes_agree_to_the_approximation_error():
    x = torch.randn(2, 9, 4, 5) * 3
    fast = lrn(x, 5, 1.0, 0.05, 0.75, mode="fast")
    exact = lrn(x, 5, 1.0, 0.05, 0.75, mode="exact")
    rel = ((fast - exact).abs() / exact.abs().clamp_min(1e-12)).max().item()
    assert 1e-5 < rel < _approx_bound(0.75)


@pytest.mark.parametrize("kwargs", [dict(mode="gpu"), dict(depth=0)])
def test_bad_arguments(kwargs):
    args = dict(depth=5, kappa=1.0, alpha=1e-4, beta=0.75, mode="fast")
    args.update(kwargs)
    with pytest.raises(ValueError):
        lrn(torch.ones(1, 3, 2, 2), **args)


def test_rejects_non_4d():
    with pytest.raises(ValueError):
        lrn(torch.ones(3, 2, 2), 5, 1.0, 1e-4, 0.75)


def test_fast_pow_gradient_is_matconvnet_style():
    base = (torch.rand(50, dtype=torch.float64) * 10 + 0.1).requires_grad_(True)
    z = fast_pow(base, -0.75)
    z.sum().backward()
    with torch.no_grad():
        want = -0.75 * fast_pow(base, -0.75) / base
    assert torch.equal(base.grad, want)
    # values unchanged by the autograd path
    assert torch.equal(z.detach(), fast_pow(base.detach(), -0.75))


def test_fast_mode_gradient_close_to_exact_gradient():
    x = (torch.randn(2, 7, 3, 4, dtype=torch.float64) * 2).requires_grad_(True)
    g = torch.randn(2, 7, 3, 4, dtype=torch.float64)
    (gf,) = torch.autograd.grad((lrn(x, 5, 1.0, 0.1, 0.75, mode="fast") * g).sum(), x)
    (ge,) = torch.autograd.grad((lrn(x, 5, 1.0, 0.1, 0.75, mode="exact") * g).sum(), x)
    rel = ((gf - ge).abs().max() / ge.abs().max()).item()
    assert rel < 1e-2
    # and the exact-mode gradient is the true one
    assert torch.autograd.gradcheck(
        lambda t: lrn(t, 4, 2.0, 0.3, 0.6, mode="exact"), (x[:1, :, :2, :2].detach().clone().requires_grad_(True),)
    )
