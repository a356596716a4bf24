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
* ``instanceWeights`` (an ``opts`` entry): ``vl_nnloss`` multiplies each term by
  ``bsxfun(@times, label ~= 0, instanceWeights)``, so the weights broadcast against the
  label map: ``H x W x 1 x N``, ``1 x 1 x 1 x N``... for categorical losses, ``H x W x D
  (x N)`` for binary ones; a product of another shape is refused.
* ``classWeights`` (an ``opts`` entry): ``vl_nnloss`` (fork and stock v1.0-beta25) parses
  it and never uses it; the port does the same and says so when loading.

A SimpleNN ``loss`` layer is ``vl_nnloss(x, l.class)`` in ``vl_simplenn`` (fork and stock):
softmaxlog whatever its ``loss`` field says.

Stock MatConvNet (``semantics="stock"``, see :mod:`matconv_port.semantics`) has no frame
or space logic in ``dagnn.Loss`` (``+dagnn/Loss.m`` of v1.0-beta25 calls ``vl_nnloss``
as is): errors are counted at every position, labels are one per item (or a label map)
and ``top5classerror`` does not exist. A post-beta25 ``dagnn.Loss`` (its block has
``normalise``) divides the loss by the batch size, as its ``vl_nnloss`` does by default.

The output is a ``1 x 1 x 1 x 1`` tensor (MatConvNet's scalar).
"""
from __future__ import annotations

import numpy as np
import torch

from matconv_port.errors import MatConvPortError, ShapeError, UnknownLayerError
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


def _size(v) -> int:
    if v is None:
        return 0
    try:
        return int(np.asarray(v, dtype=float).size)
    except (TypeError, ValueError):
        return 1


def _weights(v, layer: str) -> torch.Tensor | None:
    """``instanceWeights`` as saved (MATLAB ``H x W x C x N`` order; a scalar; a list =
    a MATLAB row) -> an ``N x C x H x W`` tensor that broadcasts like ``bsxfun``."""
    if _size(v) == 0:
        return None
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise MatConvPortError(f"layer {layer!r} (dagnn.Loss): instanceWeights is not numeric") from None
    if isinstance(v, list):
        arr = arr.reshape(1, -1)
    if arr.ndim > 4:
        raise MatConvPortError(f"layer {layer!r} (dagnn.Loss): instanceWeights has {arr.ndim} dimensions")
    arr = arr.reshape(arr.shape + (1,) * (4 - arr.ndim))
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(3, 2, 0, 1)))


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
        self.instance_weights = _weights(opts.get("instanceweights"), self.layer_name)
        self.has_class_weights = _size(opts.get("classweights")) > 0
        self._opts = opts
        #: stock semantics: vl_nnloss as is (set by configure_semantics)
        self.plain = False
        #: post-beta25 stock: divide by the batch size
        self.normalise = False

    def configure_semantics(self, semantics: str, source_format: str) -> list[str]:
        messages = super().configure_semantics(semantics, source_format)
        if semantics == "stock" and self.loss == "top5classerror":
            raise MatConvPortError(f"layer {self.layer_name!r}: dagnn.Loss 'top5classerror' does not exist in stock "
                                   f"MatConvNet (its vl_nnloss refuses it); the paper's fork has it: --semantics fork")
        # a SimpleNN net runs as its fromSimpleNN DagNN (as the paper's scripts train it): the
        # fork's dagnn.Loss frame logic applies to it under fork semantics too
        self.plain = semantics == "stock"
        ignored = self.block.get("simplennLossField")
        if source_format == "simplenn" and isinstance(ignored, str):
            messages.append(f"layer {self.layer_name!r} (SimpleNN loss) names the loss {ignored!r}, but vl_simplenn "
                            f"ignores that field and computes softmaxlog (fork and stock); so does matconv-port")
        self.normalise = semantics == "stock" and "normalise" in self.block and \
            bool(_scalar(self._opts.get("normalise", 1), 1.0))
        if self.has_class_weights:
            messages.append(f"layer {self.layer_name!r} (dagnn.Loss): classWeights has no effect: MatConvNet's vl_nnloss "
                            f"parses it and never applies it (fork and stock v1.0-beta25); neither does matconv-port")
        return messages

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
        if self.plain:  # stock: vl_nnloss as is, one label per item
            videos, frames = n, 1
            if label.dim() != 4 and label.numel() != n:
                if self.source_format == "simplenn":
                    raise ShapeError(f"layer {self.layer_name!r}: {label.numel()} labels for {n} items (vl_simplenn's "
                                     f"vl_nnloss takes one label per item)")
                raise ShapeError(f"layer {self.layer_name!r}: {label.numel()} labels for {n} items (stock MatConvNet's "
                                 f"dagnn.Loss takes one label per item; the paper's fork repeats a video's label over "
                                 f"its frames: --semantics fork)")
        if not self.plain and "error" in self.loss and (x.shape[2] > 1 or x.shape[3] > 1 or frames > 1):
            # average predictions over space and the frames of each video
            x = x.reshape(videos, frames, x.shape[1], -1).mean(dim=(1, 3)).reshape(videos, -1, 1, 1)
            if label.dim() != 4 and label.numel() == n and frames > 1:
                label = label.reshape(-1)[::frames]
            frames = 1
        c = self._labels(label, x, frames)
        if self.loss in BINARY:
            y = self._binary(x, c.expand_as(x))
        else:
            y = self._categorical(x, c)
        if self.normalise and x.shape[0] > 1:
            y = y / x.shape[0]
        return [y.reshape(1, 1, 1, 1)]

    def _weighted_sum(self, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``instanceWeights(:)' * t(:)`` with ``instanceWeights = bsxfun(@times, c ~= 0, W)``."""
        weights = (c != 0).to(t.dtype)
        if self.instance_weights is not None:
            w = self.instance_weights.to(device=t.device, dtype=t.dtype)
            try:
                shape = torch.broadcast_shapes(weights.shape, w.shape)
            except RuntimeError:
                shape = None
            if shape != t.shape:
                raise ShapeError(f"layer {self.layer_name!r}: instanceWeights of size "
                                 f"{'x'.join(str(w.shape[k]) for k in (2, 3, 1, 0))} do not broadcast to the "
                                 f"{t.shape[2]}x{t.shape[3]}x{t.shape[1]}x{t.shape[0]} loss terms (HxWxCxN)")
            weights = weights * w
        return (weights * t).sum()

    # -------------------------------------------------------------- losses
    def _categorical(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
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
        return self._weighted_sum(t, c)

    def _binary(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
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
        return self._weighted_sum(t, c)
