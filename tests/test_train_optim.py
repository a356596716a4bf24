"""MatConvNetSGD against cnn_train_dag.m's accumulate_gradients formula, in float64."""
import numpy as np
import pytest
import torch

from matconv_port.train import MatConvNetSGD


def _reference(w, m, g, lr, lr_mult, wd, wd_mult, mom, n):
    # written from the MATLAB source, independently of the implementation
    m = mom * m - (wd * wd_mult) * w - (1.0 / n) * g
    w = w + (lr * lr_mult) * m
    return w, m


def test_gradient_steps_match_formula_float64():
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4))
    b0 = rng.standard_normal(4)
    w = torch.nn.Parameter(torch.tensor(w0))
    b = torch.nn.Parameter(torch.tensor(b0))
    opt = MatConvNetSGD([{"params": [w], "lr_mult": 1.0, "wd_mult": 1.0},
                         {"params": [b], "lr_mult": 2.0, "wd_mult": 0.0}], lr=1e-2, momentum=0.9, weight_decay=5e-4)
    rw, rb = w0.copy(), b0.copy()
    mw, mb = np.zeros_like(w0), np.zeros_like(b0)
    for step, n in enumerate([7, 3, 96, 1]):
        gw, gb = rng.standard_normal(w0.shape), rng.standard_normal(b0.shape)
        w.grad = torch.tensor(gw)
        b.grad = torch.tensor(gb)
        lr = 1e-2 if step < 2 else 1e-3
        opt.set_lr(lr)
        opt.step(batch_size=n)
        rw, mw = _reference(rw, mw, gw, lr, 1.0, 5e-4, 1.0, 0.9, n)
        rb, mb = _reference(rb, mb, gb, lr, 2.0, 5e-4, 0.0, 0.9, n)
        np.testing.assert_allclose(w.detach().numpy(), rw, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(b.detach().numpy(), rb, rtol=1e-13, atol=1e-15)
    # the momentum is really used: a step with zero gradient still moves w
    w_before = w.detach().clone()
    w.grad = torch.zeros_like(w)
    opt.step(batch_size=1)
    assert not torch.equal(w.detach(), w_before)


def test_average_method_for_moments():
    rng = np.random.default_rng(1)
    v0 = rng.standard_normal((5, 2))
    der = rng.standard_normal((5, 2))
    p = torch.nn.Parameter(torch.tensor(v0))
    opt = MatConvNetSGD([{"params": [p], "lr_mult": 0.05, "method": "average", "fanout": 2}], lr=123.0)
    p.grad = torch.tensor(der)
    opt.step(batch_size=8)
    expected = (1 - 0.05) * v0 + (0.05 / 8 / 2) * der
    np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-13)


def test_params_without_grad_untouched_and_reset_momentum():
    a = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    c = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = MatConvNetSGD([a, c], lr=0.1)
    a.grad = torch.ones(3, dtype=torch.float64)
    opt.step(batch_size=2)
    assert torch.equal(c.detach(), torch.ones(3, dtype=torch.float64))
    assert opt.state[a]["momentum_buffer"].abs().sum() > 0
    opt.reset_momentum()
    assert opt.state[a]["momentum_buffer"].abs().sum() == 0


def test_bad_arguments():
    p = torch.nn.Parameter(torch.ones(1))
    with pytest.raises(ValueError):
        MatConvNetSGD([{"params": [p], "method": "adam"}], lr=0.1)
    opt = MatConvNetSGD([p], lr=0.1)
    p.grad = torch.ones(1)
    with pytest.raises(ValueError):
        opt.step(batch_size=0)
