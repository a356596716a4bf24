"""The layer registry: MatConvNet layer type -> PyTorch implementation.

This is the ONE place where a MatConvNet layer type is connected to code. A layer
family lives in its own module of this package and registers itself::

    @register_layer("dagnn.ReLU", simplenn="relu")
    class ReLU(MatConvNetLayer):
        ...

* DagNN type names (``dagnn.Conv``) are canonical; ``simplenn=`` gives the SimpleNN
  ``type`` string(s) that map to it (as ``dagnn.DagNN.fromSimpleNN`` maps them).
* Users add their own types the same way, from a Python file given to
  ``matconv-port convert --custom-layers FILE.py`` (or by importing it before
  ``load_model``). Registering an existing type replaces it (``replace=True``).

Param layouts: a layer declares, per param slot, how MatConvNet's array maps to the
tensor its ``forward`` receives (see :data:`PARAM_LAYOUTS`). The network stores
parameters in that torch layout and remembers the MatConvNet shape, so exporting
back gives the original arrays bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

_REGISTRY: dict[str, type] = {}
_SIMPLENN_TYPES: dict[str, str] = {}


def register_layer(*types: str, simplenn: str | tuple[str, ...] = (), replace: bool = False) -> Callable[[type], type]:
    """Class decorator: register ``cls`` for the given DagNN type names.

    ``simplenn`` names SimpleNN layer types converted to this DagNN type.
    """
    simple = (simplenn,) if isinstance(simplenn, str) else tuple(simplenn)

    def wrap(cls: type) -> type:
        for t in types:
            if t in _REGISTRY and _REGISTRY[t] is not cls and not replace:
                raise ValueError(f"layer type {t!r} is already registered by {_REGISTRY[t].__name__}; pass replace=True")
            _REGISTRY[t] = cls
        for s in simple:
            _SIMPLENN_TYPES[s] = types[0]
        cls.mcn_types = tuple(types)
        return cls

    return wrap


def layer_class(mcn_type: str) -> type | None:
    """The implementation registered for a DagNN type name, or None."""
    _ensure_builtin()
    return _REGISTRY.get(mcn_type)


def simplenn_to_dagnn_type(simplenn_type: str) -> str | None:
    """DagNN type for a SimpleNN layer ``type`` string (``conv`` -> ``dagnn.Conv``), or None."""
    _ensure_builtin()
    return _SIMPLENN_TYPES.get(simplenn_type)


def registered_types() -> dict[str, type]:
    _ensure_builtin()
    return dict(_REGISTRY)


def _ensure_builtin() -> None:
    # the built-in families register on import of the package
    import matconv_port.layers  # noqa: F401


def load_custom_layers(path: str) -> None:
    """Execute a user's Python file that registers layer types with :func:`register_layer`."""
    import importlib.util
    import os

    from matconv_port.errors import MatConvPortError

    if not os.path.isfile(path):
        raise MatConvPortError(f"{path}: custom layers file not found")
    name = "matconv_port_custom_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a user's file: report it in one line
        raise MatConvPortError(f"{path}: cannot load custom layers: {type(exc).__name__}: {exc}") from exc


# ----------------------------------------------------------------------------- layouts
@dataclass(frozen=True)
class ParamLayout:
    """How a MatConvNet param array maps to the torch tensor a layer uses.

    ``view`` gives the torch-layout VIEW of a MatConvNet array (MATLAB index order,
    trailing singleton dims possibly dropped): a transpose/reshape, no copy where
    numpy can avoid one; :meth:`to_torch` makes it contiguous."""

    name: str
    view: Callable[[np.ndarray], np.ndarray]
    #: (torch array, original MatConvNet shape) -> MatConvNet array of that shape
    to_matconvnet: Callable[[np.ndarray, tuple], np.ndarray]

    def to_torch(self, a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.view(a))

    def torch_shape(self, mcn_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The torch-layout shape of a MatConvNet array of ``mcn_shape`` (no data)."""
        dummy = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=tuple(mcn_shape),
                                                strides=(0,) * len(mcn_shape), writeable=False)
        return tuple(int(v) for v in self.view(dummy).shape)


def _pad_dims(a: np.ndarray, n: int) -> np.ndarray:
    return a.reshape(a.shape + (1,) * (n - a.ndim)) if a.ndim < n else a


def _filter_view(a: np.ndarray) -> np.ndarray:
    # H x W x Cin x Cout  ->  Cout x Cin x H x W
    return _pad_dims(a, 4).transpose(3, 2, 0, 1)


def _filter_to_mcn(t: np.ndarray, shape: tuple) -> np.ndarray:
    return np.asfortranarray(t.transpose(2, 3, 1, 0)).reshape(shape, order="F")


def _filter3d_view(a: np.ndarray) -> np.ndarray:
    # H x W x T x Cin x Cout  ->  Cout x Cin x T x H x W
    return _pad_dims(a, 5).transpose(4, 3, 2, 0, 1)


def _filter3d_to_mcn(t: np.ndarray, shape: tuple) -> np.ndarray:
    return np.asfortranarray(t.transpose(3, 4, 2, 1, 0)).reshape(shape, order="F")


def _vector_view(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, order="F")


def _vector_to_mcn(t: np.ndarray, shape: tuple) -> np.ndarray:
    return np.asfortranarray(t.reshape(shape, order="F"))


def _raw_view(a: np.ndarray) -> np.ndarray:
    # MATLAB index order kept as is
    return a


def _raw_to_mcn(t: np.ndarray, shape: tuple) -> np.ndarray:
    return np.asfortranarray(t.reshape(shape))


PARAM_LAYOUTS: dict[str, ParamLayout] = {
    # conv / convt filters: H x W x Cin x Cout (convt: H x W x Cout x Cin) -> dims reversed as torch wants
    "filter2d": ParamLayout("filter2d", _filter_view, _filter_to_mcn),
    # Conv3D filters: H x W x T x Cin x Cout -> Cout x Cin x T x H x W
    "filter3d": ParamLayout("filter3d", _filter3d_view, _filter3d_to_mcn),
    # biases, bnorm multipliers/biases: any shape with C elements -> (C,)
    "vector": ParamLayout("vector", _vector_view, _vector_to_mcn),
    # as saved (MATLAB index order), e.g. bnorm moments C x 2
    "raw": ParamLayout("raw", _raw_view, _raw_to_mcn),
    # an H x W x C (x N) map broadcast against activations -> N x C x H x W (e.g. Scale's)
    "map": ParamLayout("map", _filter_view, _filter_to_mcn),
}


#: values per block of the in-place H x W swap (bounds the temporary copy)
_SWAP_CHUNK = 1 << 22


def _swap_hw_inplace(a: np.ndarray, ndim: int) -> np.ndarray | None:
    """The torch layout of a filter/map ``a`` (MatConvNet ``H x W x ...``, Fortran
    order) computed IN ``a``'s memory, or None when that is not possible.

    In column-major memory an ``H x W x C1 x C2...`` array is a run of ``H x W`` blocks,
    ``h`` fastest; the torch layout (``C2 x C1 x H x W`` C-order, dims reversed except
    H, W) is the same run of blocks with ``w`` fastest. So only each block is
    transposed: in place for square blocks (``H == W``) or a single row/column, block
    by block in chunks (temporary memory: one chunk). ``a`` is overwritten."""
    a = a.reshape(a.shape + (1,) * (ndim - a.ndim)) if a.ndim < ndim else a
    if a.ndim != ndim or not a.flags.f_contiguous or not a.flags.writeable or a.dtype.hasobject:
        return None
    h, w = a.shape[0], a.shape[1]
    if h != w and h != 1 and w != 1:
        return None
    flat = a.reshape(-1, order="F")  # a view (Fortran-contiguous)
    if h > 1 and w > 1:
        blocks = flat.reshape(-1, w, h)  # [block, w, h]: h fastest, as stored
        step = max(1, _SWAP_CHUNK // (h * w))
        for start in range(0, blocks.shape[0], step):
            part = blocks[start:start + step]
            part[...] = part.transpose(0, 2, 1).copy()
    return flat.reshape(tuple(reversed(a.shape[2:])) + (h, w))


_INPLACE_NDIM = {"filter2d": 4, "filter3d": 5, "map": 4}


def param_to_torch(layout: str, value, inplace: bool = False) -> torch.Tensor:
    """MatConvNet array -> tensor in the torch layout ``layout``. With ``inplace`` the
    array's own memory may be reused (and overwritten): no second copy of a big
    filter; the caller must not use ``value`` afterwards."""
    arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if inplace and layout in _INPLACE_NDIM and isinstance(value, np.ndarray):
        done = _swap_hw_inplace(arr, _INPLACE_NDIM[layout])
        if done is not None:
            return torch.from_numpy(done)
    out = PARAM_LAYOUTS[layout].to_torch(arr)
    if np.may_share_memory(out, arr):  # never alias the caller's array (training writes in place)
        out = out.copy()
    return torch.from_numpy(out)


def param_torch_shape(layout: str, mcn_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the tensor :func:`param_to_torch` makes from an array of ``mcn_shape``."""
    return PARAM_LAYOUTS[layout].torch_shape(mcn_shape)


def param_into(layout: str, value: np.ndarray, out: np.ndarray) -> None:
    """Write the torch layout of MatConvNet array ``value`` into ``out`` (a C-contiguous
    array of :func:`param_torch_shape`; values cast to its dtype): one pass, no
    intermediate copy."""
    view = PARAM_LAYOUTS[layout].view(np.asarray(value))
    if view.shape != out.shape:
        raise ValueError(f"param of torch shape {view.shape} written into {out.shape}")
    np.copyto(out, view, casting="unsafe")


def param_to_matconvnet(layout: str, tensor: torch.Tensor, shape: tuple) -> np.ndarray:
    return PARAM_LAYOUTS[layout].to_matconvnet(tensor.detach().cpu().numpy(), tuple(shape))
