"""ONNX export: every reference net runs in onnxruntime and matches both PyTorch
(<= 1e-5 of max |value|) and the outputs the ORIGINAL MatConvNet computed (stored
in ``fixtures/reference``), for several numbers of videos."""
from __future__ import annotations

import glob
import math
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from matconv_port import load_model
from matconv_port.errors import MatConvPortError
from matconv_port.export import export_onnx
from matconv_port.export import onnx_export
from parity_utils import RTOL_FP32, load_case, lrn_exact_tolerances, relative_error

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(os.path.dirname(HERE), "fixtures", "reference")
REF_FILES = sorted(glob.glob(os.path.join(REF, "*.mat")))
FUSED = os.path.join(REF, "fusion_twostream_vgg16narrow_a.mat")
MISC = os.path.join(REF, "dagnn_misc_a.mat")
#: the torch.export-based exporter (the default) on these; the tracer on the others (faster)
DYNAMO = {"fusion_twostream_vgg16narrow_a"}


def _name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """file -> (model, onnx path, max rel diff reported by the export)."""
    cache: dict[str, tuple] = {}

    def get(path: str):
        if path not in cache:
            model = load_model(path)
            out = tmp_path_factory.mktemp("onnx") / f"{_name(path)}.onnx"
            exporter = "auto" if _name(path) in DYNAMO else "torchscript"
            size = load_case(path).inputs[model.input_vars[0]].shape[2:]  # SimpleNN files may state none
            rel = export_onnx(model, str(out), size=size, exporter=exporter)
            cache[path] = (model, out, rel)
        return cache[path]

    return get


def _video_subsets(n_items: int, frames: int) -> list[list[int]]:
    """Item index lists for 1 video, all videos, and all videos plus the first again."""
    videos = n_items // frames
    first = list(range(frames))
    every = list(range(n_items))
    subsets = [first, every, every + first]
    return subsets if videos > 1 else [first, first + first + first]


@pytest.mark.parametrize("path", REF_FILES, ids=[_name(p) for p in REF_FILES])
def test_onnx_matches_pytorch_and_matconvnet(path, exported):
    model, out, rel = exported(path)
    assert rel <= onnx_export.ONNX_RTOL
    case = load_case(path)
    lrn_tol = lrn_exact_tolerances(model)
    session = _session(out)
    names = [i.name for i in session.get_inputs()]
    assert names == model.input_vars
    outputs = [o.name for o in session.get_outputs()]
    assert outputs == model.prediction_vars
    frames = model.frames_per_clip or 1
    n_items = next(iter(case.inputs[v] for v in names)).shape[0]
    for items in _video_subsets(n_items, frames):
        idx = torch.tensor(items)
        feed = {v: case.inputs[v][idx].numpy() for v in names}
        got = session.run(None, feed)
        with torch.no_grad():
            ours = model.forward_vars({v: case.inputs[v][idx] for v in names}, num_videos=len(items) // frames)
        for var, g in zip(outputs, got):
            ref_torch = ours[var].numpy()
            assert g.shape == ref_torch.shape
            assert np.abs(g - ref_torch).max() <= RTOL_FP32 * np.abs(ref_torch).max(), var
            # MatConvNet's own outputs, for the same items (H x W x C x N, N last)
            mcn = np.asarray(case.expected[var], dtype=np.float64)
            mcn = mcn.reshape(mcn.shape + (1,) * (4 - mcn.ndim))
            videos = [i // frames for i in items[::frames]]
            per_video = g.shape[0] // len(videos)  # output frames per video (3D pooling reduces them)
            expected = mcn[..., [v * per_video + j for v in videos for j in range(per_video)]]
            err = relative_error(torch.from_numpy(g), expected)
            assert err <= lrn_tol.get(var, RTOL_FP32), (var, err)


def test_graph_signature_of_the_fused_net(exported):
    model, out, _ = exported(FUSED)
    graph = onnx.load(str(out)).graph
    inputs = {i.name: i.type.tensor_type.shape.dim for i in graph.input}
    assert list(inputs) == ["input", "input_flow"]
    for name, channels in (("input", 3), ("input_flow", 20)):
        dims = inputs[name]
        assert dims[0].dim_param and not dims[0].dim_value  # dynamic number of items (videos x 5 frames)
        assert [d.dim_value for d in dims[1:]] == [channels, 40, 40]
    assert [o.name for o in graph.output] == ["x38_spatial", "x38_temporal"]


def test_selected_outputs_and_frames(tmp_path):
    model = load_model(FUSED)
    out = tmp_path / "f.onnx"
    rel = export_onnx(model, str(out), outputs=["relu3D5", "x38_temporal"], exporter="torchscript")
    assert rel <= 1e-5
    session = _session(out)
    assert [o.name for o in session.get_outputs()] == ["relu3D5", "x38_temporal"]
    case = load_case(FUSED)
    got = dict(zip(["relu3D5", "x38_temporal"], session.run(None, {v: case.inputs[v].numpy() for v in model.input_vars})))
    for var, g in got.items():
        assert relative_error(torch.from_numpy(g), case.expected[var]) <= RTOL_FP32, var


def test_frames_option_fixes_frames_and_keeps_videos_dynamic(tmp_path):
    model = load_model(MISC)  # built for 4 frames per video; Pooling3D [2 2 2] also works on 2
    out = tmp_path / "m.onnx"
    export_onnx(model, str(out), frames=2, exporter="torchscript")
    session = _session(out)
    for videos in (1, 3):
        x = torch.randn(2 * videos, 3, 16, 16)
        (got,) = session.run(None, {"input": x.numpy()})
        ref = model.forward_vars({"input": x}, num_videos=videos)[model.prediction_vars[0]].detach().numpy()
        assert got.shape == ref.shape == (videos, 5, 1, 1)
        assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


def test_dynamic_size(tmp_path):
    model = load_model(MISC)  # 16 x 16 inputs; its fc layer covers 4 x 4: larger frames give score maps
    out = tmp_path / "d.onnx"
    assert export_onnx(model, str(out), dynamic_size=True) <= 1e-5
    session = _session(out)
    assert [d.dim_param for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim[2:]] == \
        ["height", "width"]
    x = torch.randn(12, 3, 32, 24)  # 3 videos x 4 frames
    (got,) = session.run(None, {"input": x.numpy()})
    ref = model.forward_vars({"input": x}, num_videos=3)[model.prediction_vars[0]].detach().numpy()
    assert got.shape == ref.shape == (6, 5, 5, 3)  # 2 frames per video after Pooling3D; 5 x 3 score maps
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


# ----------------------------------------------------------------------------- bad input
def test_unknown_output_var(tmp_path):
    model = load_model(MISC)
    with pytest.raises(MatConvPortError, match="'nope' does not exist"):
        export_onnx(model, str(tmp_path / "x.onnx"), outputs=["nope"])
    assert os.listdir(tmp_path) == []


def test_label_dependent_output_refused(tmp_path):
    model = load_model(MISC)
    with pytest.raises(MatConvPortError, match="label"):
        export_onnx(model, str(tmp_path / "x.onnx"), outputs=["objective"])
    assert os.listdir(tmp_path) == []


def test_check_beyond_tolerance_writes_nothing(tmp_path, monkeypatch):
    model = load_model(os.path.join(REF, "simplenn_small_v7.mat"))
    monkeypatch.setattr(onnx_export, "check_onnx", lambda *a, **k: 2e-5)
    with pytest.raises(MatConvPortError, match="differ by 2e-05 .* from float64"):
        export_onnx(model, str(tmp_path / "x.onnx"), exporter="torchscript")
    assert os.listdir(tmp_path) == []


def _net_with_custom_layer():
    from matconv_port.layers.base import MatConvNetLayer
    from matconv_port.layers.registry import register_layer
    from matconv_port.netspec import LayerSpec, NetSpec, ParamSpec, VarSpec
    from matconv_port.network import MatConvNetModel

    @register_layer("test_export.PythonTanh", replace=True)
    class PythonTanh(MatConvNetLayer):
        """Computes element by element in Python, outside torch: no ONNX form."""

        def forward(self, inputs, params, ctx):
            x = inputs[0]
            values = [math.tanh(v) for v in x.detach().reshape(-1).tolist()]
            return [torch.tensor(values, dtype=x.dtype).reshape(x.shape)]

    rng = np.random.default_rng(0)
    spec = NetSpec(
        layers=[LayerSpec("conv", "dagnn.Conv", ["input"], ["x1"], ["cf", "cb"], {"pad": [1.0] * 4, "stride": [1.0, 1.0]}),
                LayerSpec("weird", "test_export.PythonTanh", ["x1"], ["x2"])],
        params={"cf": ParamSpec("cf", rng.standard_normal((3, 3, 2, 3)).astype(np.float32)),
                "cb": ParamSpec("cb", np.zeros((1, 3), np.float32))},
        vars=[VarSpec("input"), VarSpec("x1"), VarSpec("x2")],
        meta={"normalization": {"imageSize": [3.0, 3.0, 2.0]}}, source="custom.mat")
    return MatConvNetModel(spec)


@pytest.mark.parametrize("exporter", ["auto", "torchscript"])
def test_custom_layer_without_onnx_form(tmp_path, exporter):
    model = _net_with_custom_layer()
    with pytest.raises(MatConvPortError, match="weird"):
        export_onnx(model, str(tmp_path / "x.onnx"), exporter=exporter)
    assert os.listdir(tmp_path) == []
    # the layers before it export fine
    assert export_onnx(model, str(tmp_path / "x1.onnx"), outputs=["x1"], exporter=exporter) <= 1e-5


def test_float64_model_is_exported_in_float32(tmp_path):
    model = load_model(os.path.join(REF, "simplenn_chain_b.mat"), dtype=torch.float64)
    assert export_onnx(model, str(tmp_path / "x.onnx"), exporter="torchscript") <= 1e-5
    assert model.dtype == torch.float64
    assert _session(tmp_path / "x.onnx").get_inputs()[0].type == "tensor(float)"
