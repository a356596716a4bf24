"""Full-size random MatConvNet models for the conversion benchmark.

Writes, into a work folder (default ``/tmp/matconv_bench``; never the repository):

* ``vgg16_simplenn_v7.mat``: a VGG-16 SimpleNN (``net.layers`` a cell of structs as
  ``vl_simplenn_tidy`` leaves them: ``type``, ``name``, ``weights`` = {filters
  ``H x W x Cin x Cout`` single, biases ``1 x Cout`` single}, ``pad`` ``[t b l r]``,
  ``stride`` ``[sy sx]``, ``pool``, ``method``, ``rate``, ``leak``, ``precious``,
  ``opts``), ``meta.normalization`` and ``meta.classes``; 101 classes; MAT -v7
  (compressed, level 5). About 512 MiB of float32 weights.
* ``fused_twostream_vgg16_v73.mat``: the paper's fused two-stream VGG-16 as a saved
  ``dagnn.DagNN`` struct ``net`` (``vars``, ``params``, ``layers``, ``meta``), with the
  structure of ``fixtures/reference/fusion_twostream_vgg16narrow_a.mat`` (as the fusion
  code of ``cnn_ucf101_fusion.m`` builds it) at full VGG-16 widths (64..512, fc6
  ``7x7x512x4096``, fc7 ``4096``, fc8 ``101``, Conv3D fusion ``3x3x3x1024x512``); MAT
  -v7.3 (HDF5). About 1.1 GiB of float32 weights.

Each model gets a ``<model>.json`` manifest beside it (weight bytes, number of params,
MAT version, seed) that ``bench_convert.py`` reads.

Weights are N(0, 2/fan_in) float32 (biases N(0, 0.01)), generated chunk by chunk with
a seeded ``numpy.random.Generator``. The v7.3 file is first written with all-zero
(lazily allocated) arrays through ``write_mat`` and then filled in place, one slab of
one dataset at a time, so the generator never holds the weights; the -v7 file is
zlib-compressed as one variable by ``write_mat`` (scipy), which needs the whole net in
memory (about 3x its weights while writing).

Usage::

    python benchmarks/make_big_models.py [--out DIR] [--which vgg16,fused] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any, Iterator

import numpy as np

# matconv_port (and so torch) is imported inside the functions that need it:
# bench_convert.py imports this module for its constants and must stay small.

DEFAULT_OUT = "/tmp/matconv_bench"
NUM_CLASSES = 101
VGG16_FILE = "vgg16_simplenn_v7.mat"
FUSED_FILE = "fused_twostream_vgg16_v73.mat"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NARROW_FUSION = os.path.join(REPO, "fixtures", "reference", "fusion_twostream_vgg16narrow_a.mat")

#: VGG-16 conv blocks: (block, number of convs, output channels)
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
#: slab size (float32 values) for chunked random generation
CHUNK = 1 << 24

# ----------------------------------------------------------------------------- random fill


def _fill_random(flat: np.ndarray, rng: np.random.Generator, std: float) -> None:
    """Fill a 1-D float32 view in place, CHUNK values at a time."""
    for start in range(0, flat.size, CHUNK):
        stop = min(start + CHUNK, flat.size)
        block = rng.standard_normal(stop - start, dtype=np.float32)
        block *= np.float32(std)
        flat[start:stop] = block


def _std_for(shape: tuple[int, ...]) -> float:
    """He-like std for a filter (fan-in = all dims but the last); 0.1 for a bias."""
    if len(shape) >= 3:
        return float(np.sqrt(2.0 / max(1, int(np.prod(shape[:-1])))))
    return 0.1


def random_array(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A float32 array of MATLAB shape ``shape``, Fortran-ordered (as MATLAB holds it)."""
    arr = np.empty(shape, dtype=np.float32, order="F")
    _fill_random(arr.reshape(-1, order="F"), rng, _std_for(shape))
    return arr


# ----------------------------------------------------------------------------- VGG-16 SimpleNN


def _empty_cell():
    from matconv_port.converters.mattypes import MatCell

    return MatCell([], shape=(0, 0))


def _row(*values: float) -> np.ndarray:
    return np.array([list(values)], dtype=np.float64)


def _conv(name: str, shape: tuple[int, int, int, int], pad: int, rng: np.random.Generator) -> dict:
    from matconv_port.converters.mattypes import MatCell

    filters = random_array(shape, rng)
    biases = random_array((1, shape[3]), rng)
    return {"type": "conv", "name": name, "weights": MatCell([filters, biases], shape=(1, 2)),
            "pad": _row(pad, pad, pad, pad), "stride": _row(1, 1), "precious": np.array([[False]]),
            "opts": _empty_cell()}


def _relu(name: str) -> dict:
    return {"type": "relu", "name": name, "leak": _row(0), "precious": np.array([[False]])}


def _pool(name: str) -> dict:
    return {"type": "pool", "name": name, "method": "max", "pool": _row(2, 2), "pad": _row(0, 0, 0, 0),
            "stride": _row(2, 2), "precious": np.array([[False]]), "opts": _empty_cell()}


def _dropout(name: str, rate: float) -> dict:
    return {"type": "dropout", "name": name, "rate": _row(rate), "precious": np.array([[False]])}


def vgg16_layer_shapes(in_channels: int = 3, num_classes: int = NUM_CLASSES) -> list[tuple[str, tuple[int, ...]]]:
    """(conv layer name, filter shape H x W x Cin x Cout) of VGG-16, in order."""
    out, cin = [], in_channels
    for block, count, width in VGG16_BLOCKS:
        for i in range(1, count + 1):
            out.append((f"conv{block}_{i}", (3, 3, cin, width)))
            cin = width
    out += [("fc6", (7, 7, 512, 4096)), ("fc7", (1, 1, 4096, 4096)), ("fc8", (1, 1, 4096, num_classes))]
    return out


def vgg16_simplenn(rng: np.random.Generator, num_classes: int = NUM_CLASSES) -> dict:
    """The ``net`` struct of a random VGG-16 SimpleNN, tidied (neutral values)."""
    from matconv_port.converters.mattypes import MatCell

    shapes = dict(vgg16_layer_shapes(3, num_classes))
    layers: list[dict] = []
    for block, count, _ in VGG16_BLOCKS:
        for i in range(1, count + 1):
            name = f"conv{block}_{i}"
            layers.append(_conv(name, shapes[name], 1, rng))
            layers.append(_relu(f"relu{block}_{i}"))
        layers.append(_pool(f"pool{block}"))
    layers += [_conv("fc6", shapes["fc6"], 0, rng), _relu("relu6"), _dropout("drop6", 0.5),
               _conv("fc7", shapes["fc7"], 0, rng), _relu("relu7"), _dropout("drop7", 0.5),
               _conv("fc8", shapes["fc8"], 0, rng),
               {"type": "softmax", "name": "prob", "precious": np.array([[False]])}]
    names = [f"class{k:03d}" for k in range(1, num_classes + 1)]
    meta = {
        "inputs": {"name": "data", "size": _row(224, 224, 3, 10)},
        "normalization": {"averageImage": np.array([123.68, 116.779, 103.939], dtype=np.float32).reshape(1, 1, 3),
                          "imageSize": _row(224, 224, 3), "interpolation": "bilinear",
                          "keepAspect": np.array([[True]]), "border": _row(32, 32), "cropSize": _row(0.875)},
        "classes": {"name": MatCell(names, shape=(1, num_classes)),
                    "description": MatCell([f"action {n}" for n in names], shape=(1, num_classes))},
    }
    return {"layers": MatCell(layers, shape=(1, len(layers))), "meta": meta}


def _weight_stats(values: Iterator[np.ndarray]) -> tuple[int, int]:
    n, nbytes = 0, 0
    for v in values:
        n += 1
        nbytes += int(v.nbytes)
    return n, nbytes


def make_vgg16(out_dir: str, seed: int = 0, num_classes: int = NUM_CLASSES) -> str:
    """Write the VGG-16 SimpleNN as MAT -v7; returns its path."""
    from matconv_port.converters.matfile import write_mat

    rng = np.random.default_rng(seed)
    net = vgg16_simplenn(rng, num_classes)
    n, nbytes = _weight_stats(w for l in net["layers"] if l["type"] == "conv" for w in l["weights"])
    path = os.path.join(out_dir, VGG16_FILE)
    write_mat(path, {"net": net}, version="7")
    del net
    _write_manifest(path, {"model": "vgg16-simplenn", "mat_version": "7", "params": n,
                           "weight_bytes": nbytes, "seed": seed, "classes": num_classes})
    return path


# ----------------------------------------------------------------------------- fused DagNN


def _vgg16_width(name: str) -> int | None:
    for block, count, width in VGG16_BLOCKS:
        for i in range(1, count + 1):
            if name.startswith(f"conv{block}_{i}"):
                return width
    return None


def _full_conv_size(layer_name: str, narrow: tuple[int, ...], num_classes: int) -> tuple[int, ...]:
    """Full VGG-16 size of a conv layer of the narrow fused net (by its layer name)."""
    base = layer_name.replace("_spatial", "").replace("_temporal", "")
    if base == "conv53D":
        return (3, 3, 3, 1024, 512)
    if base == "fc6":
        return (7, 7, 512, 4096)
    if base == "fc7":
        return (1, 1, 4096, 4096)
    if base == "prediction":
        return (1, 1, 4096, num_classes)
    width = _vgg16_width(base)
    if width is None:
        raise ValueError(f"no full-size rule for layer {layer_name!r}")
    h, w, cin, _ = narrow
    if base == "conv1_1":
        full_cin = cin  # 3 (RGB) or 20 (flow)
    else:
        full_cin = dict(vgg16_layer_shapes(3, num_classes))[base][2]
    return (h, w, full_cin, width)


def fused_dagnn(num_classes: int = NUM_CLASSES, narrow_path: str = NARROW_FUSION) -> dict:
    """The saved DagNN struct of the fused two-stream VGG-16 at full widths, params
    ZERO-filled (``np.zeros``: pages are not touched until written)."""
    from matconv_port.converters.matfile import read_mat
    from matconv_port.converters.mattypes import MatCell, MatStructArray

    narrow = read_mat(narrow_path)["net"]
    layers = narrow["layers"]
    params = narrow["params"]
    param_index = {p["name"]: i for i, p in enumerate(params)}
    new_params = [dict(p) for p in params]
    new_layers = []
    for layer in layers:
        layer = dict(layer)
        block = dict(layer["block"])
        if layer["type"] in ("dagnn.Conv", "dagnn.Conv3D"):
            size = _full_conv_size(layer["name"], tuple(int(s) for s in np.ravel(block["size"])), num_classes)
            block["size"] = np.array([size], dtype=np.float64)
            fname, bname = list(layer["params"])
            new_params[param_index[fname]]["value"] = np.zeros(size, dtype=np.float32, order="F")
            new_params[param_index[bname]]["value"] = np.zeros((1, size[-1]), dtype=np.float32, order="F")
        layer["block"] = block
        new_layers.append(layer)
    meta = dict(narrow["meta"])
    norm = dict(meta["normalization"])
    norm["imageSize"] = np.array([[224.0, 224.0, 20.0]])
    meta["normalization"] = norm
    names = [f"class{k:03d}" for k in range(1, num_classes + 1)]
    meta["classes"] = {"name": MatCell(names, shape=(1, num_classes))}
    return {"vars": narrow["vars"],
            "params": MatStructArray(new_params, shape=params.shape, fields=params.fields),
            "layers": MatStructArray(new_layers, shape=layers.shape, fields=layers.fields),
            "meta": meta}


def _fill_v73_params(path: str, rng: np.random.Generator) -> tuple[int, int]:
    """Fill every ``net.params(i).value`` dataset of a v7.3 file with random values,
    one slab (along the HDF5 first axis = MATLAB's last dim) at a time."""
    import h5py

    n, nbytes = 0, 0
    with h5py.File(path, "r+") as f:
        refs = f["net"]["params"]["value"][()].reshape(-1)
        for ref in refs:
            ds = f[ref]
            mshape = tuple(reversed(ds.shape))
            std = _std_for(mshape)
            rows = max(1, CHUNK // max(1, int(np.prod(ds.shape[1:]))))
            for start in range(0, ds.shape[0], rows):
                stop = min(start + rows, ds.shape[0])
                slab = rng.standard_normal((stop - start,) + ds.shape[1:], dtype=np.float32)
                slab *= np.float32(std)
                ds[start:stop] = slab
            n += 1
            nbytes += int(np.prod(ds.shape)) * ds.dtype.itemsize
    return n, nbytes


def make_fused(out_dir: str, seed: int = 1, num_classes: int = NUM_CLASSES) -> str:
    """Write the fused two-stream VGG-16 DagNN as MAT -v7.3; returns its path."""
    from matconv_port.converters.matfile import write_mat

    path = os.path.join(out_dir, FUSED_FILE)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-fused-", suffix=".mat", dir=out_dir)
    os.close(fd)
    try:
        write_mat(tmp, {"net": fused_dagnn(num_classes)}, version="7.3")
        n, nbytes = _fill_v73_params(tmp, np.random.default_rng(seed))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _write_manifest(path, {"model": "fused-twostream-vgg16-dagnn", "mat_version": "7.3", "params": n,
                           "weight_bytes": nbytes, "seed": seed, "classes": num_classes})
    return path


# ----------------------------------------------------------------------------- manifest / CLI


def _write_manifest(model_path: str, info: dict[str, Any]) -> None:
    info = dict(info, file=os.path.basename(model_path), file_bytes=os.path.getsize(model_path))
    manifest = model_path + ".json"
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=os.path.dirname(manifest))
    with os.fdopen(fd, "w") as fh:
        json.dump(info, fh, indent=1)
    os.replace(tmp, manifest)


def read_manifest(model_path: str) -> dict[str, Any]:
    with open(model_path + ".json") as fh:
        return json.load(fh)


MAKERS = {"vgg16": (VGG16_FILE, make_vgg16), "fused": (FUSED_FILE, make_fused)}


def ensure_models(out_dir: str, which: list[str], seed: int = 0, force: bool = False,
                  log=print) -> dict[str, str]:
    """Generate the requested models unless already there (with their manifest), in
    this process."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for key in which:
        fname, maker = MAKERS[key]
        path = os.path.join(out_dir, fname)
        if force or not (os.path.exists(path) and os.path.exists(path + ".json")):
            t0 = time.perf_counter()
            log(f"generating {path} ...")
            maker(out_dir, seed=seed + (0 if key == "vgg16" else 1))
            log(f"  done in {time.perf_counter() - t0:.1f} s ({os.path.getsize(path) / 2**20:.0f} MiB)")
        paths[key] = path
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help=f"work folder (default {DEFAULT_OUT})")
    ap.add_argument("--which", default="vgg16,fused", help="comma-separated: vgg16, fused")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true", help="regenerate even if present")
    args = ap.parse_args(argv)
    if os.path.abspath(args.out).startswith(REPO + os.sep):
        print(f"refusing to write big models into the repository ({args.out})", file=sys.stderr)
        return 2
    which = [w.strip() for w in args.which.split(",") if w.strip()]
    bad = [w for w in which if w not in MAKERS]
    if bad:
        print(f"unknown model(s): {', '.join(bad)} (choose from {', '.join(MAKERS)})", file=sys.stderr)
        return 2
    for key, path in ensure_models(args.out, which, args.seed, args.force).items():
        info = read_manifest(path)
        print(f"{key}: {path}  {info['params']} params, {info['weight_bytes'] / 2**20:.1f} MiB weights, "
              f"file {info['file_bytes'] / 2**20:.1f} MiB (MAT v{info['mat_version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
