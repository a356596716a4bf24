"""The fused two-stream net of cnn_ucf101_fusion.m, against the ORIGINAL code's output.

``fixtures/reference/fusion_twostream_vgg16narrow_a.mat`` holds the fused net as
MatConvNet saved it after ``eval`` (``net``), every var's value (``outputs``) and the
two stream nets the fusion code was fed (``netA_spatial_stream``,
``netB_temporal_stream``). Here:

* the net built by our surgery from the two streams equals the stored net, spec to
  spec (layer order, names, types, inputs/outputs, params incl. values bit for bit
  and learningRate/weightDecay, block properties, var order, meta);
* every var of the net built by ``matconv-port fuse`` (streams saved as their own
  .mat files) and of the stored net loaded with ``load_model`` matches MatConvNet
  (fp32, max abs error <= 1e-5 x max |var|).
"""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from matconv_port import from_matconvnet_layout, load_model
from matconv_port.cli import main
from matconv_port.converters import load_netspec
from matconv_port.converters.matfile import read_mat, write_mat
from matconv_port.fusion import FusionOptions, build_fused_netspec
from matconv_port.netspec import NetSpec

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(REPO, "fixtures", "reference", "fusion_twostream_vgg16narrow_a.mat")
# other fusion cases computed by the original code (same layout, plus ``fusion_opts``:
# the script's options used), when present; FUSION_EXTRA_FIXTURES may name another folder
_EXTRA = os.environ.get("FUSION_EXTRA_FIXTURES", "")
CASES = sorted({REFERENCE, *glob.glob(os.path.join(REPO, "fixtures", "*", "fusion_twostream_*.mat")),
                *(glob.glob(os.path.join(_EXTRA, "fusion_twostream_*.mat")) if _EXTRA else [])})
RTOL = 1e-5


# ---------------------------------------------------------------------------- helpers
def _norm(value):
    """Block/meta values in one comparable form (numbers -> flat float lists)."""
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            return ("array", [float(x) for x in value.reshape(-1, order="F")])
        return ("array", [str(x) for x in value.reshape(-1, order="F")])
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (int, float, bool, np.number)) for v in value) and value:
            return ("array", [float(v) for v in value])
        return [_norm(v) for v in value]
    if isinstance(value, (bool, np.bool_, int, float, np.number)):
        return ("array", [float(value)])
    return value


def assert_same_spec(ours: NetSpec, ref: NetSpec, ignore_meta=("curBatchSize",), param_order: bool = True) -> None:
    assert [l.name for l in ours.layers] == [l.name for l in ref.layers]
    for a, b in zip(ours.layers, ref.layers):
        assert (a.type, a.inputs, a.outputs, a.params) == (b.type, b.inputs, b.outputs, b.params), a.name
        assert _norm(a.block) == _norm(b.block), f"block of {a.name}: {a.block} != {b.block}"
    assert [(v.name, bool(v.precious)) for v in ours.vars] == [(v.name, bool(v.precious)) for v in ref.vars]
    if param_order:
        assert list(ours.params) == list(ref.params)
    else:
        assert sorted(ours.params) == sorted(ref.params)
    for name, p in ref.params.items():
        q = ours.params[name]
        a, b = np.asarray(q.value), np.asarray(p.value)
        assert a.shape == b.shape and a.dtype == b.dtype, name
        assert np.array_equal(a, b), f"param {name} differs"
        assert (q.learning_rate, q.weight_decay) == (p.learning_rate, p.weight_decay), name
    keys = [k for k in ref.meta if k not in ignore_meta]
    assert [k for k in ours.meta if k not in ignore_meta] == keys
    for k in keys:
        assert _norm(ours.meta[k]) == _norm(ref.meta[k]), f"meta.{k}"
    avg_a = np.asarray(ours.meta["normalization"]["averageImage"])
    avg_b = np.asarray(ref.meta["normalization"]["averageImage"])
    assert avg_a.shape == avg_b.shape and avg_a.dtype == avg_b.dtype


def mcn(t: torch.Tensor) -> np.ndarray:
    t = t.detach().double()
    return (t.permute(2, 3, 1, 0) if t.dim() == 4 else t).numpy()


def compare_vars(values: dict, expected: dict, rtol: float = RTOL) -> int:
    checked, bad = 0, []
    for name, ref in expected.items():
        if name == "label":
            continue
        assert name in values, f"var {name} not computed"
        a = mcn(values[name]).reshape(-1, order="F")
        b = np.asarray(ref, dtype=np.float64).reshape(-1, order="F")
        assert a.size == b.size, f"{name}: {tuple(values[name].shape)} vs {np.shape(ref)}"
        err = np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)
        if err > rtol:
            bad.append(f"{name}: {err:.2e}")
        checked += 1
    assert not bad, "vars off: " + ", ".join(bad)
    return checked


class Case:
    def __init__(self, path: str):
        d = read_mat(path)
        self.path = path
        self.raw = d
        self.num_videos = int(np.ravel(d["curBatchSize"])[0])
        self.frames = int(np.ravel(d["nFrames"])[0])
        self.inputs = {"input": from_matconvnet_layout(torch.from_numpy(np.asarray(d["input"], np.float32))),
                       "input_flow": from_matconvnet_layout(torch.from_numpy(np.asarray(d["input_flow"], np.float32))),
                       "label": torch.from_numpy(np.asarray(d["label"], np.float64).ravel(order="F"))}
        self.expected = dict(d["outputs"])
        self.options, self.cli_args = self._options(d.get("fusion_opts"))

    def _options(self, fo) -> tuple[FusionOptions, list[str]]:
        """FusionOptions and ``fuse`` CLI flags equal to the script options of the file."""
        if not fo:
            return FusionOptions(frames=self.frames), ["--frames", str(self.frames)]
        num = lambda k: float(np.ravel(fo[k])[0])  # noqa: E731
        rows = list(fo["fusionLayer"])
        layers = [(str(rows[i]), str(rows[i + len(rows) // 2])) for i in range(len(rows) // 2)]
        opts = FusionOptions(fusion_layers=layers, fusion_type="sum" if num("doSum") else "conv",
                             conv3d=bool(num("addConv3D")), pool3d=bool(num("addPool3D")),
                             init_method=str(fo["initMethod"]), fuse_into=str(fo["fuseInto"]),
                             remove_fuse_from=bool(num("removeFuseFrom")), frames=int(num("nFrames")),
                             dropout_rate=num("dropOutRatio"))
        args = ["--frames", str(opts.frames), "--type", opts.fusion_type, "--init", opts.init_method,
                "--fuse-into", opts.fuse_into, "--dropout", str(opts.dropout_rate),
                "--conv3d" if opts.conv3d else "--no-conv3d", "--pool3d" if opts.pool3d else "--no-pool3d",
                *(["--remove-fuse-from"] if opts.remove_fuse_from else [])]
        for a, b in layers:
            args += ["--layer", f"{a}:{b}"]
        return opts, args

    def write_streams(self, folder) -> tuple[str, str]:
        a, b = os.path.join(folder, "rgb_stream.mat"), os.path.join(folder, "flow_stream.mat")
        write_mat(a, {"net": self.raw["netA_spatial_stream"]})
        write_mat(b, {"net": self.raw["netB_temporal_stream"]})
        return a, b


@pytest.fixture(scope="module", params=CASES, ids=[os.path.basename(p) for p in CASES])
def case(request):
    return Case(request.param)


@pytest.fixture(scope="module")
def streams(case, tmp_path_factory):
    return case.write_streams(str(tmp_path_factory.mktemp("streams")))


# ---------------------------------------------------------------------------- tests
def test_build_equals_stored_net(case, streams):
    ours = build_fused_netspec(load_netspec(streams[0]), load_netspec(streams[1]), case.options)
    ref = load_netspec(case.path)
    assert_same_spec(ours, ref)
    assert len(ours.layers) == len(ref.layers)


def test_stored_net_matches_matconvnet(case):
    model = load_model(case.path, lrn_mode="fast")
    assert model.frames_per_clip in (case.frames, None)
    values = model.forward_vars(dict(case.inputs), num_videos=case.num_videos)
    assert compare_vars(values, case.expected) == len(case.expected) - 1


def test_cli_fuse_matches_matconvnet(case, streams, tmp_path):
    out = str(tmp_path / "fused.pt")
    result = CliRunner().invoke(main, ["fuse", *streams, "-o", out, *case.cli_args])
    assert result.exit_code == 0, result.output
    assert "relu5_3_concat" in result.output and os.path.exists(out)
    model = load_model(out, lrn_mode="fast")
    assert model.frames_per_clip in (case.frames, None)
    ref = load_model(case.path)
    assert model.var_names == ref.var_names and model.input_vars == ["input", "input_flow"]
    values = model.forward_vars(dict(case.inputs), num_videos=case.num_videos)
    assert set(values) == set(ref.forward_vars(dict(case.inputs), num_videos=case.num_videos))
    compare_vars(values, case.expected)
    # without num_videos the frame count stored in the file is used
    if model.frames_per_clip:
        again = model.forward_vars(dict(case.inputs))
        assert torch.equal(again["x38_spatial"], values["x38_spatial"])


def test_fuse_from_converted_files_gives_the_same_net(case, streams, tmp_path):
    from matconv_port.network import MatConvNetModel
    from matconv_port.serialization import save_converted

    pts = []
    for path in streams:
        pt = str(tmp_path / (os.path.basename(path) + ".pt"))
        save_converted(MatConvNetModel(load_netspec(path)), pt)
        pts.append(pt)
    out = str(tmp_path / "fused.pt")
    result = CliRunner().invoke(main, ["fuse", *pts, "-o", out, *case.cli_args])
    assert result.exit_code == 0, result.output
    # a MatConvNetModel lists params in order of first use (as MATLAB's loadobj does)
    assert_same_spec(load_model(out).to_netspec(), load_netspec(case.path), param_order=False)
