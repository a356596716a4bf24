"""Layer implementations, one module per MatConvNet layer family.

Importing this package registers every built-in type (see :mod:`.registry`).
"""
from matconv_port.layers.registry import register_layer  # noqa: F401
