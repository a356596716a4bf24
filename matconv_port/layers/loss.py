"""``dagnn.Loss`` (SimpleNN ``softmaxloss`` maps to ``loss = 'softmaxlog'``).

Semantics of the paper's fork (``dagnn.Loss`` + ``vl_nnloss``):

* The loss is the SUM over instances and spatial positions (not the mean), each term
  weighted by ``label ~= 0`` (label 0 = skip).
* With ``F = items / num_videos`` frames per video (or a spatial map): the ``*error``
  losses first average predictions over H, W and the F frames of each video; the
  other losses repeat each video's label F times (frames fastest).
* Labels are MatConvNet's 1-based class indices: one per video or one per item
  (a 1-D tensor); binary losses (``binaryerror``, ``binarylog``, ``logistic``,
  ``hinge``) take +-1 labels shaped like the predictions.
* ``opts`` is MATLAB's name/value cell, e.g. ``{'topK', 2}`` (default topK 5).

The output is a ``1 x 1 x 1 x 1`` tensor (MatConvNet's scalar).
"""
from __future__ import annotations

import torch

from matconv_port.errors import ShapeError, UnknownLayerError
from matconv_port.layers.base import ForwardContext, MatConvNetLayer
from matconv_port.layers.registry import register_layer

CATEGORICAL = ("classerror", "top5classerror", "topkerror", "log", "softmaxlog", "mhinge", "mshinge")
BINARY = ("binaryerror", "binarylog", "logistic", "hinge")


def _opts(block_opts) -> dict:
    out = {}
    if isinstance(block_opts, (list, tuple)):
        items = list(block_opts)
        for i in range(0, len(items) - 1, 2):
            if isinstance(items[i], str):
                out[items[i].lower()] = items[i + 1]
    elif isinstance(block_opts, dict):
        out = {k.lower(): v for k, v in block_opts.items()}
    return out


def _scalar(v, default: float) -> float:
    try:
        import numpy as np

        arr = np.asarray(v, dtype=float).ravel()
        return float(arr[0]) if arr.size else default
    except (TypeError, ValueError):
        return default


@register_layer("dagnn.Loss", simplenn="softmaxloss")
class Loss(MatConvNetLayer):
    needs_label = True

    def __init__(self, spec):
        super().__init__(spec)
        self.loss = str(self.block.get("loss") or "softmaxlog").lower()
        if self.loss not in CATEGORICAL + BINARY:
            raise UnknownLayerError(
                f"layer {self.layer_name!r}: dagnn.Loss with unknown loss {self.loss!r}",
                {f"dagnn.Loss({self.loss})": [self.layer_name]})
        opts = _opts(self.block.get("opts"))
        self.top_k = int(_scalar(opts.get("topk", 5), 5))
        self.threshold = _scalar(opts.get("threshold", 0), 0.0)

    # -------------------------------------------------------------- labels
    def _labels(self, label: torch.Tensor, x: torch.Tensor, frames: int) -> torch.Tensor:
        """Labels shaped to broadcast against ``x`` (``N x 1|C x H x W``).

        1-D labels hold one value per video (repeated for its ``frames`` items, frames
        fastest, as ``dagnn.Loss`` does) or one per item; MatConvNet then repeats them
        over the spatial positions (``vl_nnloss`` form 1). 4-D labels are used as given.
        """
        n = x.shape[0]
        label = label.to(device=x.device, dtype=x.dtype)
        if label.dim() == 4:
            return label
        flat = label.reshape(-1)
        if flat.numel() * frames == n and frames > 1:
            flat = flat.repeat_interleave(frames)
        elif flat.numel() != n:
            raise ShapeError(f"layer {self.layer_name!r}: {flat.numel()} labels for {n} items ({frames} frames per video)")
        return flat.view(-1, 1, 1, 1).expand(-1, 1, x.shape[2], x.shape[3])

    def forward(self, inputs, params, ctx: ForwardContext):
        x, label = inputs[0], inputs[1]
        n = x.shape[0]
        videos = ctx.num_videos if ctx.num_videos and n % ctx.num_videos == 0 else n
        frames = n // videos
        if "error" in self.loss and (x.shape[2] > 1 or x.shape[3] > 1 or frames > 1):
            # average predictions over space and the frames of each video
            x = x.reshape(videos, frames, x.shape[1], -1).mean(dim=(1, 3)).reshape(videos, -1, 1, 1)
            if label.dim() != 4 and label.numel() == n and frames > 1:
                label = label.reshape(-1)[::frames]
            frames = 1
        c = self._labels(label, x, frames)
        if self.loss in BINARY:
            return [self._binary(x, c.expand_as(x)).reshape(1, 1, 1, 1)]
        return [self._categorical(x, c).reshape(1, 1, 1, 1)]

    # -------------------------------------------------------------- losses
    def _categorical(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        weights = (c != 0).to(x.dtype)
        ci = (c.clamp(min=1) - 1).long()  # N x 1 x H x W, 0-based
        if self.loss == "classerror":
            chat = torch.argmax(x, dim=1, keepdim=True)
            t = (ci != chat).to(x.dtype)
        elif self.loss in ("topkerror", "top5classerror"):
            k = 5 if self.loss == "top5classerror" else self.top_k
            order = torch.sort(x, dim=1, descending=True, stable=True).indices[:, :k]
            t = 1 - (order == ci).to(x.dtype).sum(dim=1, keepdim=True)
        else:
            xc = torch.gather(x, 1, ci)
            if self.loss == "log":
                t = -torch.log(xc)
            elif self.loss == "softmaxlog":
                xmax = x.max(dim=1, keepdim=True).values
                t = xmax + torch.log(torch.exp(x - xmax).sum(dim=1, keepdim=True)) - xc
            elif self.loss == "mhinge":
                t = torch.clamp(1 - xc, min=0)
            else:  # mshinge
                q = x.scatter(1, ci, float("-inf"))
                t = torch.clamp(1 - xc + q.max(dim=1, keepdim=True).values, min=0)
        return (weights * t).sum()

    def _binary(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        weights = (c != 0).to(x.dtype)
        if self.loss == "binaryerror":
            t = (torch.sign(x - self.threshold) != c).to(x.dtype)
        elif self.loss == "binarylog":
            t = -torch.log(c * (x - 0.5) + 0.5)
        elif self.loss == "logistic":
            a = -c * x
            b = torch.clamp(a, min=0)
            t = b + torch.log(torch.exp(-b) + torch.exp(a - b))
        else:  # hinge
            t = torch.clamp(1 - c * x, min=0)
        return (weights * t).sum()
