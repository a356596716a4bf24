"""Clip-level API (TwoStreamClipModel) and describe_fusion on the stored MatConvNet
fused net: 0..255 clips in, class scores per head and their average out, equal to
MatConvNet's predictions averaged as cnn_train_dag averages them."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from matconv_port.converters.matfile import read_mat
from matconv_port.errors import ModelFormatError, ShapeError
from matconv_port.fusion import TwoStreamClipModel, describe_fusion
from matconv_port.fusion.describe import count_params

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(REPO, "fixtures", "reference", "fusion_twostream_vgg16narrow_a.mat")


@pytest.fixture(scope="module")
def raw():
    return read_mat(REFERENCE)


@pytest.fixture(scope="module")
def clip_model():
    return TwoStreamClipModel.from_file(REFERENCE)


def _clips(raw):
    """The reference inputs (mean-subtracted, H x W x C x N) back to 0..255 clips."""
    avg = np.asarray(raw["net"]["meta"]["normalization"]["averageImage"], np.float32).reshape(-1)
    videos, frames = int(np.ravel(raw["curBatchSize"])[0]), int(np.ravel(raw["nFrames"])[0])
    rgb = torch.from_numpy(np.asarray(raw["input"], np.float32)).permute(3, 2, 0, 1) + torch.from_numpy(avg[20:]).view(1, 3, 1, 1)
    flow = torch.from_numpy(np.asarray(raw["input_flow"], np.float32)).permute(3, 2, 0, 1) + \
        torch.from_numpy(avg[:20]).view(1, 20, 1, 1)
    h, w = rgb.shape[2:]
    return rgb.reshape(videos, frames, 3, h, w), flow.reshape(videos, frames, 20, h, w)


def _matconvnet_scores(raw, var):
    x = np.asarray(raw["outputs"][var], np.float64)  # 1 x 1 x K x N (or K x N)
    x = x.reshape(-1, x.shape[-1], order="F") if x.ndim == 2 else x.mean(axis=(0, 1))
    return torch.from_numpy(x.T)  # N x K


def test_clip_scores_match_matconvnet(raw, clip_model):
    rgb, flow = _clips(raw)
    out = clip_model(rgb, flow)
    assert set(out) == {"spatial", "temporal", "average"}
    s, t = _matconvnet_scores(raw, "x38_spatial"), _matconvnet_scores(raw, "x38_temporal")
    scale = float(max(s.abs().max(), t.abs().max()))
    for key, ref in (("spatial", s), ("temporal", t), ("average", (s + t) / 2)):
        assert out[key].shape == ref.shape
        assert (out[key].double() - ref).abs().max().item() <= 1e-5 * scale, key
    assert clip_model.frames_per_clip == 5


def test_uint8_input_and_mean_inside(raw, clip_model):
    rgb, flow = _clips(raw)
    q_rgb, q_flow = rgb.round().clamp(0, 255).to(torch.uint8), flow.round().clamp(0, 255).to(torch.uint8)
    out = clip_model(q_rgb, q_flow)
    again = clip_model(q_rgb.float(), q_flow.float())
    torch.testing.assert_close(out["average"], again["average"])
    # a constant clip equal to the means is the all-zero input of the net
    avg = clip_model.rgb_mean.expand_as(rgb), clip_model.flow_mean.expand_as(flow)
    zero = clip_model(avg[0].clone(), avg[1].clone())
    ref = clip_model.net.forward_vars({"input": torch.zeros(10, 3, 40, 40), "input_flow": torch.zeros(10, 20, 40, 40)},
                                      num_videos=2)["x38_spatial"].mean(dim=(2, 3))
    torch.testing.assert_close(zero["spatial"], ref)


def test_score_maps_are_averaged_over_space(clip_model):
    g = torch.Generator().manual_seed(3)
    rgb = torch.rand(1, 5, 3, 72, 88, generator=g) * 255
    flow = torch.rand(1, 5, 20, 72, 88, generator=g) * 255
    out = clip_model(rgb, flow)
    x = (rgb - clip_model.rgb_mean).reshape(5, 3, 72, 88)
    f = (flow - clip_model.flow_mean).reshape(5, 20, 72, 88)
    maps = clip_model.net.forward_vars({"input": x, "input_flow": f}, num_videos=1)["x38_spatial"]
    assert maps.shape[2] * maps.shape[3] > 1
    torch.testing.assert_close(out["spatial"], maps.mean(dim=(2, 3)))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_traceable(raw, clip_model):
    rgb, flow = _clips(raw)
    traced = torch.jit.trace(clip_model, (rgb, flow), strict=False, check_trace=False)
    eager = clip_model(rgb, flow)
    got = traced(rgb, flow)
    for k in eager:
        torch.testing.assert_close(got[k], eager[k])


def test_shape_errors(clip_model):
    with pytest.raises(ShapeError):
        clip_model(torch.zeros(1, 5, 3, 40, 40), torch.zeros(1, 5, 10, 40, 40))
    with pytest.raises(ShapeError):
        clip_model(torch.zeros(5, 3, 40, 40), torch.zeros(5, 20, 40, 40))
    with pytest.raises(ShapeError):
        clip_model(torch.zeros(1, 5, 3, 40, 40), torch.zeros(1, 4, 20, 40, 40))


def test_not_a_two_stream_net():
    from matconv_port import load_model

    single = os.path.join(REPO, "fixtures", "reference", "simplenn_small_v7.mat")
    with pytest.raises(ModelFormatError):
        TwoStreamClipModel(load_model(single))


def test_describe_fusion(raw, clip_model):
    lines = describe_fusion(clip_model.net)
    text = "\n".join(lines)
    assert "spatial tower" in text and "temporal tower" in text
    assert "relu5_3_concat" in text and "conv53D" in text and "pool3D5_spatial" in text
    assert "prediction_spatial" in text and "prediction_temporal" in text
    counts = count_params(clip_model.net)
    spatial = sum(np.size(p["value"]) for p in raw["netA_spatial_stream"]["params"])
    temporal = sum(np.size(p["value"]) for p in raw["netB_temporal_stream"]["params"])
    c = 8
    assert counts["spatial"] == spatial and counts["temporal"] == temporal
    assert counts["fusion"] == 27 * 2 * c * c + c
    assert counts["total"] == spatial + temporal + counts["fusion"]
    assert f"{counts['total']:,}" in text
    assert describe_fusion(clip_model.net.to_netspec()) == lines


def test_full_size_vgg16_parameter_counts():
    """Shapes-only full-size nets: VGG-16 has the well-known 138,357,544 parameters
    (1000 classes); the paper's fusion adds a 3x3x3x1024x512 Conv3D."""
    from matconv_port.fusion import FusionOptions, build_fused_netspec
    from matconv_port.fusion.describe import param_table
    from matconv_port.train.archs import vgg16

    assert count_params(vgg16(1000, "rgb", init="shape", layout="paper"))["total"] == 138_357_544
    a, b = vgg16(101, "rgb", init="shape", layout="paper"), vgg16(101, "flow", init="shape", layout="paper")
    fused = build_fused_netspec(a, b, FusionOptions())
    assert fused.params["conv3Df"].value.shape == (3, 3, 3, 1024, 512)
    c = count_params(fused)
    assert c["fusion"] == 3 * 3 * 3 * 1024 * 512 + 512
    assert c["spatial"] == count_params(a)["total"] and c["temporal"] == count_params(b)["total"]
    rows = dict(param_table())
    late = rows["late fusion (prediction layer: both full towers, scores averaged)"]["total"]
    conv = rows["conv fusion at relu5_3 (1x1 2-D conv), fused-from tower cut"]["total"]
    conv_tower = sum(np.prod(p.value.shape) for n, p in b.params.items() if n.startswith("conv"))
    assert conv == count_params(a)["total"] + conv_tower + 1024 * 512 + 512
    assert conv < 0.6 * late
