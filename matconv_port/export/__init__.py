"""Exporters: a :class:`~matconv_port.network.MatConvNetModel` to ONNX
(:func:`export_onnx`) and back to a MatConvNet DagNN ``.mat`` file
(:func:`export_matconvnet`), as ``matconv-port export`` and ``train --save-matconvnet``
use them."""
from __future__ import annotations

from matconv_port.export.onnx_export import export_onnx

__all__ = ["export_onnx", "export_matconvnet", "netspec_to_dagnn_struct"]


def __getattr__(name: str):
    if name in ("export_matconvnet", "netspec_to_dagnn_struct"):
        from matconv_port.export import matconvnet_export

        return getattr(matconvnet_export, name)
    raise AttributeError(name)
