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

__all__ = ["load_model", "load_netspec_any", "from_matconvnet_layout", "to_matconvnet_layout"]
__version__ = "0.1.0"

_LAZY = {
    "load_model": "matconv_port.loading",
    "load_netspec_any": "matconv_port.loading",
    "from_matconvnet_layout": "matconv_port.layout",
    "to_matconvnet_layout": "matconv_port.layout",
}


def __getattr__(name: str):
    # torch is imported on first use, so CLI start-up and worker processes stay light
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'matconv_port' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
