"""Layer implementations, one module per MatConvNet layer family.

Importing this package registers every built-in type (see :mod:`.registry`).
To add a type: write a module here (or a user file for ``--custom-layers``) with a
:class:`~matconv_port.layers.base.MatConvNetLayer` subclass decorated by
:func:`~matconv_port.layers.registry.register_layer`, and import it below.
"""
from matconv_port.layers import activation, conv, loss, merge, normalization, pooling, video3d  # noqa: F401
# stock MatConvNet 1.0-beta25 types
from matconv_port.layers import crop, local_norm, pdist, roipooling, spatial_transformer  # noqa: F401
from matconv_port.layers import axpy, global_pool, reshape, slice  # noqa: F401  (mcnExtraLayers types)
from matconv_port.layers import ffdnet  # noqa: F401  (FFDNet's SimpleNN SubP / concat)
from matconv_port.layers.base import ForwardContext, MatConvNetLayer  # noqa: F401
from matconv_port.layers.registry import register_layer  # noqa: F401
