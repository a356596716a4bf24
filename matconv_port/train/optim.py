"""MatConvNet's SGD (``accumulate_gradients`` of ``cnn_train_dag.m``) as a torch optimizer.

MatConvNet's gradients are those of the SUM of the losses over the batch; the update
divides by the batch size ``N`` (videos in that batch, summed over sub-batches and
GPUs). For a param with ``trainMethod = 'gradient'``::

    thisDecay = weightDecay * wd_mult
    thisLR    = learningRate(epoch) * lr_mult
    m = momentum * m - thisDecay * w - (1 / N) * der
    w = w + thisLR * m

evaluated in that order (the decay uses the value before the step). Batch-norm
moments (``trainMethod = 'average'``) are not trained by gradient: their "derivative"
is the batch moments ``[mean, sigma]`` times the items of each sub-batch, summed over
sub-batches (``dagnn.BatchNorm.backward``), and::

    w = (1 - lr_mult) * w + (lr_mult / N / fanout) * der

with ``lr_mult`` the param's own learningRate (the epoch's rate is NOT applied) and
``fanout`` the number of layers using the param. A param without a gradient
(``.grad is None``: not reached by back-propagation) is left alone, momentum included.

``cnn_train_dag.m`` zeroes the momentum at the start of every training epoch
(``process_epoch``); :meth:`MatConvNetSGD.reset_momentum` does that.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim import Optimizer

METHODS = ("gradient", "average")


class MatConvNetSGD(Optimizer):
    """``MatConvNetSGD(param_groups, lr, momentum=0.9, weight_decay=5e-4)``.

    Each group may carry ``lr_mult`` and ``wd_mult`` (MatConvNet's per-param
    ``learningRate``/``weightDecay``, default 1), ``method`` (``"gradient"`` or
    ``"average"``) and ``fanout`` (for ``"average"``, default 1). ``lr`` is the
    epoch's learning rate (``opts.learningRate(epoch)``); change it with
    :meth:`set_lr`. Call :meth:`step` with the size of the batch the accumulated
    gradients are summed over.
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.9, weight_decay: float = 5e-4):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError("lr, momentum and weight_decay must be non-negative")
        defaults = dict(lr=float(lr), momentum=float(momentum), weight_decay=float(weight_decay),
                        lr_mult=1.0, wd_mult=1.0, method="gradient", fanout=1)
        super().__init__(params, defaults)
        for g in self.param_groups:
            if g["method"] not in METHODS:
                raise ValueError(f"unknown training method {g['method']!r} (use one of {METHODS})")

    def set_lr(self, lr: float) -> None:
        """Set the epoch's learning rate (MatConvNet's ``state.learningRate``) in every group."""
        for g in self.param_groups:
            g["lr"] = float(lr)

    def reset_momentum(self) -> None:
        """Zero every momentum buffer (``state.momentum = zeros`` at each epoch start)."""
        for g in self.param_groups:
            for p in g["params"]:
                buf = self.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    buf.zero_()

    @torch.no_grad()
    def step(self, closure=None, *, batch_size: float = 1):  # type: ignore[override]
        """Apply MatConvNet's update with the accumulated ``.grad`` of each param.

        ``batch_size``: the ``N`` the summed gradients are divided by (videos in the
        batch, all sub-batches and processes together).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        inv_n = 1.0 / float(batch_size)
        for g in self.param_groups:
            method = g["method"]
            for p in g["params"]:
                der = p.grad
                if der is None:
                    continue
                if method == "average":
                    this_lr = float(g["lr_mult"])
                    coef = this_lr / float(batch_size) / float(g.get("fanout", 1))
                    p.mul_(1.0 - this_lr).add_(der.to(p.dtype) * coef)
                    continue
                this_decay = float(g["weight_decay"]) * float(g["wd_mult"])
                this_lr = float(g["lr"]) * float(g["lr_mult"])
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = torch.zeros_like(p)
                    state["momentum_buffer"] = buf
                # m = momentum*m - thisDecay*w - (1/N)*der, each product rounded on its own
                # and subtracted left to right (as MATLAB evaluates it); one scratch tensor
                tmp = torch.mul(p, this_decay)
                buf.mul_(g["momentum"]).sub_(tmp)
                torch.mul(der.to(p.dtype), inv_n, out=tmp)
                buf.sub_(tmp)
                # w = w + thisLR*m
                torch.mul(buf, this_lr, out=tmp)
                p.add_(tmp)
        return loss


def moments_params(model) -> set[str]:
    """MatConvNet names of batch-norm moment params (the 3rd param of ``dagnn.BatchNorm``),
    which MatConvNet trains with the ``average`` method."""
    out = set()
    for layer in model.layer_specs:
        if layer.type == "dagnn.BatchNorm" and len(layer.params) >= 3:
            out.add(layer.params[2])
    return out


def param_fanout(model) -> dict[str, int]:
    """How many layers use each param (MatConvNet's ``params(p).fanout``)."""
    counts: dict[str, int] = {}
    for layer in model.layer_specs:
        for p in layer.params:
            counts[p] = counts.get(p, 0) + 1
    return counts


def matconvnet_param_groups(model, trainable: set[str] | None = None) -> list[dict]:
    """One optimizer group per param of a :class:`~matconv_port.network.MatConvNetModel`,
    carrying its ``learningRate``/``weightDecay`` as ``lr_mult``/``wd_mult``, the
    ``average`` method for batch-norm moments, and its fanout.

    ``trainable``: MatConvNet names of the params to include (default: all).
    Groups are in the net's param order; each has ``name`` (the MatConvNet name).
    """
    moments = moments_params(model)
    fanout = param_fanout(model)
    groups = []
    for name, p in model.named_matconvnet_params():
        if trainable is not None and name not in trainable:
            continue
        groups.append({"params": [p], "name": name, "lr_mult": float(model.param_lr[name]),
                       "wd_mult": float(model.param_wd[name]),
                       "method": "average" if name in moments else "gradient",
                       "fanout": int(fanout.get(name, 1))})
    return groups
