"""matconv-port: MatConvNet models (SimpleNN, DagNN, the fused two-stream nets of
Feichtenhofer et al., CVPR 2016) in PyTorch, with layer-by-layer parity.

Public API (stable):

* :func:`load_model` -- a ``.mat`` MatConvNet model or a converted ``.pt`` file ->
  :class:`~matconv_port.network.MatConvNetModel` in eval mode, whose
  ``forward_vars(inputs, num_videos=None)`` returns every MatConvNet variable by name.
* :func:`from_matconvnet_layout` / :func:`to_matconvnet_layout` -- ``H x W x C x N``
  <-> ``N x C x H x W``.
"""
from __future__ import annotations

from matconv_port.layout import from_matconvnet_layout, to_matconvnet_layout
from matconv_port.loading import load_model, load_netspec_any

__all__ = ["load_model", "load_netspec_any", "from_matconvnet_layout", "to_matconvnet_layout"]
__version__ = "0.1.0"
