"""File-level fusion: two model files -> a converted fused ``.pt`` (``matconv-port fuse``)."""
from __future__ import annotations

import os
from typing import Callable

from matconv_port.errors import MatConvPortError
from matconv_port.fusion.build import FusionOptions, build_fused_netspec


def fuse_files(rgb_model: str, flow_model: str, output: str, options: FusionOptions | None = None, *,
               log: Callable[[str], None] | None = None, warn: Callable[[str], None] | None = None):
    """Build the fused net from an RGB and a flow model file (MatConvNet ``.mat`` or
    converted ``.pt``) and write it as a converted file (atomically). Returns the
    :class:`~matconv_port.network.MatConvNetModel`."""
    from matconv_port.loading import load_netspec_any
    from matconv_port.network import MatConvNetModel
    from matconv_port.serialization import save_converted

    options = options or FusionOptions()
    options.check()
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise MatConvPortError(f"{output}: output folder {folder} does not exist")
    spec_a = load_netspec_any(rgb_model)
    spec_b = load_netspec_any(flow_model)
    fused = build_fused_netspec(spec_a, spec_b, options, warn=warn)
    del spec_a, spec_b  # the fused spec shares their arrays; let them go once copied
    fused.source = os.path.basename(output)
    model = MatConvNetModel(fused, warn=warn, release_spec_values=True)
    save_converted(model, output)
    if log:
        from matconv_port.fusion.describe import describe_fusion

        for line in describe_fusion(model):
            log(line)
        log(f"wrote {output}")
    return model
