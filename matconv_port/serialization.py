"""The converted-model file (``.pt``) written by ``matconv-port convert``.

A plain ``torch.save`` dict that loads with ``torch.load(weights_only=True)``: only
tensors, strings, numbers, lists and dicts; no pickled code. It holds the graph
(layers with their MatConvNet types, inputs, outputs, params and block properties),
the var list, ``meta`` (class names, normalisation...) and every param ONCE (shared
params stay one tensor) in the torch layout of its layer type, with its original
MatConvNet shape, learning rate and weight decay. Numpy arrays inside ``meta`` and
layer blocks are stored as tensors and given back as numpy arrays.
"""
from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import torch

from matconv_port.atomic import atomic_path
from matconv_port.errors import MatFileError, ModelFormatError
from matconv_port.netspec import LayerSpec, NetSpec, VarSpec

FORMAT_NAME = "matconv-port/converted"
FORMAT_VERSION = 1


def to_plain(value: Any) -> Any:
    """Python/numpy value -> what ``torch.load(weights_only=True)`` accepts."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "US":
            return {"__ndarray_str__": [str(x) for x in value.ravel(order="F")], "shape": list(value.shape)}
        if value.dtype == object:
            return {"__ndarray_obj__": [to_plain(x) for x in value.ravel(order="F")], "shape": list(value.shape)}
        arr = value.astype(np.uint8) if value.dtype == bool else value
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(arr)), "bool": value.dtype == bool}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool, type(None), torch.Tensor)):
        return value
    return str(value)


def from_plain(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            arr = value["__ndarray__"].numpy()
            return arr.astype(bool) if value.get("bool") else arr
        if "__ndarray_str__" in value:
            return np.array(value["__ndarray_str__"], dtype=object).reshape(value["shape"], order="F")
        if "__ndarray_obj__" in value:
            items = [from_plain(x) for x in value["__ndarray_obj__"]]
            arr = np.empty(len(items), dtype=object)
            arr[:] = items
            return arr.reshape(value["shape"], order="F")
        return {k: from_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_plain(v) for v in value]
    return value


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` to a temp file beside ``path``, then rename: never a half-written file."""
    with atomic_path(path, ".pt") as tmp:
        torch.save(obj, tmp)


def model_payload(model) -> dict:
    """The dict written for a :class:`~matconv_port.network.MatConvNetModel`."""
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "source": os.path.basename(model.source or ""),
        "source_format": model.source_format,
        # whose MatConvNet semantics the net follows (matconv_port.semantics) and why
        "semantics": model.semantics,
        "semantics_evidence": model.semantics_choice.to_store(),
        "layers": [
            {"name": l.name, "type": l.type, "inputs": list(l.inputs), "outputs": list(l.outputs),
             "params": list(l.params), "block": to_plain(l.block)}
            for l in model.layer_specs
        ],
        "vars": [{"name": v.name, "precious": bool(v.precious)} for v in model.vars_spec],
        "meta": to_plain(model.meta),
        "params": {name: model.params[key].detach().cpu() for name, key in model.param_keys.items()},
        "param_info": {
            name: {"layout": model.param_layouts[name], "shape": list(model.param_shapes[name]),
                   "learning_rate": model.param_lr[name], "weight_decay": model.param_wd[name]}
            for name in model.param_keys
        },
    }


def save_converted(model, path: str) -> None:
    """Write ``model`` as a self-contained converted file (atomic). (``convert`` writes
    params straight from the MatConvNet file: :class:`matconv_port.convert.ConversionJob`.)"""
    atomic_torch_save(model_payload(model), path)


def load_weights_only(path: str, **kwargs) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU. A file that holds pickled code
    objects (classes, functions: a pickled module, or anything but tensors, numbers,
    strings, lists and dicts) is refused and NOTHING of it runs; the message says so and
    names the way out (re-create the file with ``matconv-port convert``), never PyTorch's
    advice to load with ``weights_only=False``, which would run that code."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True, **kwargs)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        what = f" (e.g. {found.group(1)})" if found else ""
        raise MatFileError(f"{path}: the file holds pickled code objects{what}; matconv-port loads only weights and "
                           f"runs no code from a file, so it is refused: re-create it from the MatConvNet model with "
                           f"`matconv-port convert MODEL.mat`") from None
    except Exception as exc:  # corrupt zip, truncated file...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise MatFileError(f"{path}: not a readable matconv-port file ({type(exc).__name__}: {first})") from None


def is_converted_file(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def read_converted(path: str) -> tuple[NetSpec, dict[str, torch.Tensor], dict[str, tuple]]:
    """Read a converted file: (NetSpec without param values, torch-layout params, MatConvNet shapes)."""
    payload = load_weights_only(path, mmap=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"{path}: not a file written by matconv-port convert")
    if int(payload.get("version", 0)) > FORMAT_VERSION:
        raise ModelFormatError(f"{path}: written by a newer matconv-port (format version {payload['version']})")
    from matconv_port.netspec import ParamSpec

    info = payload["param_info"]
    spec = NetSpec(
        layers=[LayerSpec(l["name"], l["type"], list(l["inputs"]), list(l["outputs"]), list(l["params"]),
                          from_plain(l["block"])) for l in payload["layers"]],
        params={n: ParamSpec(n, None, float(i["learning_rate"]), float(i["weight_decay"])) for n, i in info.items()},
        vars=[VarSpec(v["name"], bool(v["precious"])) for v in payload["vars"]],
        meta=from_plain(payload["meta"]),
        source_format=payload.get("source_format", "dagnn"),
        source=path,
        semantics=payload.get("semantics"),
        semantics_evidence=[str(e) for e in payload.get("semantics_evidence", [])],
    )
    shapes = {n: tuple(int(s) for s in i["shape"]) for n, i in info.items()}
    return spec, dict(payload["params"]), shapes
