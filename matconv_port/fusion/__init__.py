"""The paper's fused two-stream network (Feichtenhofer et al., CVPR 2016).

* :func:`build_fused_netspec` / :class:`FusionOptions`: the network construction of
  ``cnn_ucf101_fusion.m`` (two single-stream nets -> the fused net), exactly.
* :mod:`matconv_port.fusion.surgery`: NetSpec edits with ``dagnn.DagNN`` semantics.
* :mod:`matconv_port.fusion.init`: the fusion filters' initial values.
* :class:`TwoStreamClipModel`: clip-level API ``model(rgb, flow)`` on 0..255 frames.
* :func:`describe_fusion`: a summary of a fused net (towers, fusion point, params).
"""
from __future__ import annotations

from matconv_port.fusion.build import FUSION_TYPES, FusionOptions, build_fused_netspec

__all__ = ["FusionOptions", "FUSION_TYPES", "build_fused_netspec", "TwoStreamClipModel", "describe_fusion",
           "fuse_files"]


def __getattr__(name: str):
    if name == "TwoStreamClipModel":
        from matconv_port.fusion.clip_model import TwoStreamClipModel

        return TwoStreamClipModel
    if name == "describe_fusion":
        from matconv_port.fusion.describe import describe_fusion

        return describe_fusion
    if name == "fuse_files":
        from matconv_port.fusion.files import fuse_files

        return fuse_files
    raise AttributeError(name)
