"""Loading any supported model file into a :class:`MatConvNetModel`."""
from __future__ import annotations

import os

import torch

from matconv_port.errors import MatFileError
from matconv_port.netspec import NetSpec


def load_netspec_any(path: str, outputs: list[str] | None = None) -> NetSpec:
    """NetSpec (params in MatConvNet layout) of a ``.mat`` model or a converted file."""
    from matconv_port.serialization import is_converted_file

    check_file(path)
    if is_converted_file(path):
        model = load_model(path)
        spec = model.to_netspec()
        if outputs:
            from matconv_port.converters.loader import prune_to_outputs

            spec = prune_to_outputs(spec, outputs)
        return spec
    from matconv_port.converters import load_netspec

    return load_netspec(path, outputs=outputs)


def check_file(path: str) -> None:
    if not os.path.exists(path):
        raise MatFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise MatFileError(f"{path}: is a directory, not a model file")


def load_model(path: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, *,
               lrn_mode: str = "exact", outputs: list[str] | None = None, warn=None, precision: str = "exact",
               semantics: str = "auto"):
    """Load a MatConvNet ``.mat`` model (SimpleNN or DagNN; MAT v5/v7/v7.3; a bare net,
    a ``-struct`` save, a struct holding ``net`` or a ``net-epoch-N.mat`` checkpoint) or a
    file written by ``matconv-port convert``; returns a
    :class:`~matconv_port.network.MatConvNetModel` in eval mode on ``device``.

    ``lrn_mode``: ``"exact"`` (MatConvNet's GPU LRN, true pow; default) or ``"fast"``
    (emulates MatConvNet's CPU pow approximation). ``outputs``: keep only the layers
    these vars need. ``precision``: ``"exact"`` (IEEE fp32, TF32 off: MatConvNet parity;
    default), ``"tf32"`` or ``"bf16"`` (autocast), see :mod:`matconv_port.precision`;
    ``device``: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``. ``semantics``: ``"auto"``
    (default: stored in a converted file, else detected from the file's evidence, else
    the paper's fork), ``"fork"`` or ``"stock"`` (MatConvNet v1.0-beta25) where the two
    compute different things, see :mod:`matconv_port.semantics`.
    """
    from matconv_port.semantics import check_name

    check_name(semantics)
    from matconv_port.devices import resolve_device
    from matconv_port.network import MatConvNetModel
    from matconv_port.precision import resolve_precision
    from matconv_port.serialization import is_converted_file, read_converted

    device = resolve_device(device, option="device")
    precision = resolve_precision(precision).name
    check_file(path)
    if is_converted_file(path):
        spec, tparams, shapes = read_converted(path)
        if outputs:
            from matconv_port.converters.loader import prune_to_outputs

            spec = prune_to_outputs(spec, outputs)
            tparams = {k: v for k, v in tparams.items() if k in spec.params}
        model = MatConvNetModel(spec, dtype=dtype, lrn_mode=lrn_mode, torch_params=tparams, param_shapes=shapes, warn=warn,
                                precision=precision, semantics=semantics)
    else:
        from matconv_port.converters import load_netspec

        spec = load_netspec(path, outputs=outputs)
        model = MatConvNetModel(spec, dtype=dtype, lrn_mode=lrn_mode, release_spec_values=True, warn=warn,
                                precision=precision, semantics=semantics)
    return model.to(device).eval()
