"""Clip-level API of a fused two-stream net, for people who are not MatConvNet users.

::

    clip_model = TwoStreamClipModel.from_file("fused.pt")        # or a .mat
    out = clip_model(rgb, flow)     # rgb N x T x 3 x H x W, flow N x T x 20 x H x W, 0..255
    out["spatial"], out["temporal"], out["average"]              # N x classes each

Conventions (those of the original code, ``cnn_ucf101_get_im_flow_batch.m`` and
``cnn_train_dag.m``):

* ``rgb``: RGB frames (channel order R, G, B) as 0..255 values; ``flow``: the stack of
  10 flow fields per frame, channels ``u1 v1 u2 v2 ... u10 v10`` as 0..255 values
  (128 = no motion). Any H, W the towers accept (>= 224 for VGG-16: smaller sizes
  make pool5/fc6 empty); larger frames (e.g. the full 256 x 340) give class-score
  MAPS.
* Mean subtraction happens inside: the net's ``meta.normalization.averageImage``
  (``1 x 1 x 23``: 20 flow means, then 3 RGB means) averaged over H, W is subtracted
  per channel, as getBatch does before ``net.eval``
  (:func:`~matconv_port.data.average_image.channel_means`).
* The ``N x T`` frames become ``N*T`` items, frames fastest (item = video * T +
  frame), with ``net.meta.curBatchSize = N``.
* Per head (each loss layer's prediction input, e.g. ``x38_spatial``), the raw class
  scores (no softmax) are averaged over space (``mean(mean(x, 1), 2)``) and over the
  output frames of each video; ``average`` is the mean of the heads, the prediction-
  layer fusion of the paper (what ``cnn_train_dag`` averages at test time).

The forward pass is torch-traceable (``torch.jit.trace(clip_model, (rgb, flow),
strict=False)``; dict output). A trace is specialised to its T, H and W.
"""
from __future__ import annotations

import torch
from torch import nn

from matconv_port.data.average_image import average_image, channel_means
from matconv_port.errors import ModelFormatError, ShapeError
from matconv_port.netspec import unique_name


def _head_key(layer_name: str, var: str, used: set[str]) -> str:
    key = var
    for tower in ("spatial", "temporal"):
        if layer_name.endswith("_" + tower) or var.endswith("_" + tower):
            key = tower
    return unique_name(key, used)


class TwoStreamClipModel(nn.Module):
    """Wraps a fused :class:`~matconv_port.network.MatConvNetModel` (inputs ``input``
    = RGB and ``input_flow`` = flow) into ``forward(rgb, flow) -> dict`` of class
    scores per head (``spatial``, ``temporal``) and their ``average`` (N x classes)."""

    def __init__(self, model, rgb_var: str = "input", flow_var: str = "input_flow"):
        super().__init__()
        self.net = model
        names = set(model.input_vars)
        if rgb_var not in names or flow_var not in names:
            raise ModelFormatError(f"{model.source or 'network'}: not a two-stream net (inputs {model.input_vars}; "
                                   f"expected {rgb_var!r} and {flow_var!r})")
        self.rgb_var, self.flow_var = rgb_var, flow_var
        self.heads = list(model.prediction_vars)
        producers = {o: l.name for l in model.layer_specs for o in l.outputs}
        used: set[str] = set()
        self.head_keys = [_head_key(producers.get(v, v), v, used) for v in self.heads]
        flow_ch, rgb_ch = self._input_channels(model)
        mean = channel_means(average_image(model.meta), flow_ch + rgb_ch, what="the net's inputs (flow, then RGB)")
        self.register_buffer("flow_mean", torch.tensor(mean[:flow_ch], dtype=model.dtype).view(1, 1, flow_ch, 1, 1))
        self.register_buffer("rgb_mean", torch.tensor(mean[flow_ch:], dtype=model.dtype).view(1, 1, rgb_ch, 1, 1))
        self.flow_channels, self.rgb_channels = flow_ch, rgb_ch
        self.eval()

    @classmethod
    def from_file(cls, path: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                  **kwargs) -> "TwoStreamClipModel":
        """Load a fused net (MatConvNet ``.mat`` or converted ``.pt``) and wrap it."""
        from matconv_port.loading import load_model

        return cls(load_model(path, device=device, dtype=dtype, **kwargs))

    # ------------------------------------------------------------------ set-up
    def _input_channels(self, model) -> tuple[int, int]:
        def width(var: str) -> int:
            for l in model.layer_specs:
                if var in l.inputs and l.params and l.params[0] in model.param_shapes:
                    shape = model.param_shapes[l.params[0]]
                    return int(shape[2]) if len(shape) > 2 else 1
            raise ModelFormatError(f"{model.source or 'network'}: cannot tell the channels of input {var!r}")

        return width(self.flow_var), width(self.rgb_var)

    # ------------------------------------------------------------------ running
    @property
    def frames_per_clip(self) -> int | None:
        return self.net.frames_per_clip

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor) -> dict[str, torch.Tensor]:
        if rgb.dim() != 5 or flow.dim() != 5:
            raise ShapeError(f"rgb and flow must be N x T x C x H x W (got {tuple(rgb.shape)} and {tuple(flow.shape)})")
        n, t = int(rgb.shape[0]), int(rgb.shape[1])
        if tuple(flow.shape[:2]) != (n, t) or tuple(flow.shape[3:]) != tuple(rgb.shape[3:]):
            raise ShapeError(f"rgb {tuple(rgb.shape)} and flow {tuple(flow.shape)} differ in N, T, H or W")
        if rgb.shape[2] != self.rgb_channels or flow.shape[2] != self.flow_channels:
            raise ShapeError(f"expected {self.rgb_channels} RGB and {self.flow_channels} flow channels "
                             f"(got {rgb.shape[2]} and {flow.shape[2]})")
        dtype = self.rgb_mean.dtype
        x_rgb = (rgb.to(dtype) - self.rgb_mean).reshape(n * t, *rgb.shape[2:])
        x_flow = (flow.to(dtype) - self.flow_mean).reshape(n * t, *flow.shape[2:])
        values = self.net.forward_vars({self.rgb_var: x_rgb, self.flow_var: x_flow}, num_videos=n,
                                       outputs=self.heads)
        out: dict[str, torch.Tensor] = {}
        scores = []
        for var, key in zip(self.heads, self.head_keys):
            y = values[var]  # (N * T') x K x h x w
            y = y.mean(dim=(2, 3)).reshape(n, -1, y.shape[1]).mean(dim=1)
            out[key] = y
            scores.append(y)
        out["average"] = torch.stack(scores, 0).mean(0)
        return out
