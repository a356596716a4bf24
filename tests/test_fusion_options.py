"""The fusion variants of cnn_ucf101_fusion.m (sum, 1x1 2-D conv fusion, fuse into
temporal, removing the fused-from tower, several fusion layers, init methods) and
the user errors of ``matconv-port fuse``."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from matconv_port.cli import main
from matconv_port.converters import load_netspec
from matconv_port.converters.matfile import read_mat, write_mat
from matconv_port.errors import MatConvPortError, ModelFormatError
from matconv_port.fusion import FusionOptions, build_fused_netspec
from matconv_port.fusion.init import conv3d_fusion_filter, gaussian3, init_weight
from matconv_port.network import MatConvNetModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(REPO, "fixtures", "reference", "fusion_twostream_vgg16narrow_a.mat")
C = 8  # conv5 width of the narrow reference streams


@pytest.fixture(scope="module")
def stream_files(tmp_path_factory):
    raw = read_mat(REFERENCE)
    folder = tmp_path_factory.mktemp("streams")
    a, b = str(folder / "rgb.mat"), str(folder / "flow.mat")
    write_mat(a, {"net": raw["netA_spatial_stream"]})
    write_mat(b, {"net": raw["netB_temporal_stream"]})
    return a, b


@pytest.fixture(scope="module")
def specs(stream_files):
    return load_netspec(stream_files[0]), load_netspec(stream_files[1])


def _build(specs, **kw):
    return build_fused_netspec(specs[0], specs[1], FusionOptions(**kw))


def _run(spec, videos=2, frames=5, size=40):
    model = MatConvNetModel(spec)
    g = torch.Generator().manual_seed(0)
    ins = {"input": torch.randn(videos * frames, 3, size, size, generator=g) * 50,
           "input_flow": torch.randn(videos * frames, 20, size, size, generator=g) * 20}
    return model, model.forward_vars(ins, num_videos=videos)


def _layer(spec, name):
    return next(l for l in spec.layers if l.name == name)


def test_streams_are_not_modified(specs):
    before = [(l.name, list(l.inputs)) for l in specs[0].layers]
    _build(specs)
    assert [(l.name, list(l.inputs)) for l in specs[0].layers] == before


def test_sum_fusion(specs):
    spec = _build(specs, fusion_type="sum", conv3d=False)
    s = _layer(spec, "relu5_3_concat")
    assert s.type == "dagnn.Sum" and s.inputs == ["x30_spatial", "x30_temporal"]
    assert not any(l.type == "dagnn.Conv3D" for l in spec.layers)
    assert _layer(spec, "pool3D5_spatial").inputs == ["relu5_3_concat"]
    _, v = _run(spec)
    torch.testing.assert_close(v["relu5_3_concat"], v["x30_spatial"] + v["x30_temporal"])
    with pytest.raises(MatConvPortError):
        _build(specs, fusion_type="sum", conv3d=True)


def test_2d_conv_fusion_without_conv3d(specs):
    spec = _build(specs, conv3d=False)
    names = [l.name for l in spec.layers]
    i = names.index("relu5_3_spatial")
    assert names[i + 1:i + 4] == ["relu5_3_concat", "conv_fusion_1", "relu_fusion_1"]
    conv = _layer(spec, "conv_fusion_1")
    assert conv.inputs == ["relu5_3_concat"] and conv.outputs == ["x_conv_fusion_1"]
    assert _layer(spec, "pool3D5_spatial").inputs == ["x_relu_fusion_1"]
    f = spec.params["conv_fusion_1f"]
    assert f.value.shape == (1, 1, 2 * C, C) and f.value.dtype == np.float32
    expected = np.concatenate([0.25 * np.eye(C), 0.75 * np.eye(C)]).astype(np.float32)
    assert np.array_equal(f.value[0, 0], expected)
    assert (f.learning_rate, f.weight_decay) == (1, 1)
    b = spec.params["conv_fusion_1b"]
    assert b.value.shape == (1, C) and (b.learning_rate, b.weight_decay) == (2, 0)
    _, v = _run(spec)
    assert v["x38_spatial"].shape == (2, 7, 1, 1)


def test_fuse_into_temporal(specs):
    spec = _build(specs, fuse_into="temporal")
    names = [l.name for l in spec.layers]
    assert names.index("relu5_3_concat") == names.index("relu5_3_temporal") + 1
    assert _layer(spec, "relu5_3_concat").inputs == ["x30_spatial", "x30_temporal"]
    assert _layer(spec, "pool3D5_temporal").inputs == ["relu3D5"]
    assert _layer(spec, "pool3D5_spatial").inputs == ["x30_spatial"]
    _run(spec)


def test_remove_fuse_from(specs):
    spec = _build(specs, remove_fuse_from=True)
    names = [l.name for l in spec.layers]
    assert names[names.index("relu5_3_temporal") + 1:][:1] != ["pool5_temporal"]
    assert not any(n.endswith("_temporal") and n.startswith(("fc", "prediction", "loss", "pool3D5")) for n in names)
    assert "err1_temporal" not in names and "err1__spatial" in names
    model, v = _run(spec)
    assert model.prediction_vars == ["x38_spatial"]
    full = _build(specs)
    assert sum(np.size(p.value) for p in spec.params.values()) < sum(np.size(p.value) for p in full.params.values())


def test_several_fusion_layers(specs):
    spec = _build(specs, fusion_layers=[("relu5_3", "relu5_3"), ("relu4_3", "relu4_3")], conv3d=False)
    names = [l.name for l in spec.layers]
    assert "relu4_3_concat" in names and "relu5_3_concat" in names
    # insert_conv_layers numbers the fusion layers in net order: relu4_3 -> 1, relu5_3 -> 2
    assert names.index("conv_fusion_1") == names.index("relu4_3_concat") + 1
    assert names.index("conv_fusion_2") == names.index("relu5_3_concat") + 1
    _run(spec)


def test_dropout_and_frames_options(specs):
    spec = _build(specs, frames=4, dropout_rate=0.5)
    assert {float(np.ravel(l.block["rate"])[0]) for l in spec.layers if l.type == "dagnn.DropOut"} == {0.5}
    assert spec.meta["curNumFrames"][0] == 4.0 and len(spec.meta["curNumFrames"]) == len(spec.layers)
    pools = [i for i, l in enumerate(spec.layers) if l.type == "dagnn.Pooling3D"]
    assert [spec.meta["curNumFrames"][i] for i in pools] == [1.0, 1.0]


@pytest.mark.parametrize("method,wa,wb", [("2sumAB", 0.25, 0.75), ("sumAB", 1, 1), ("netA", 1, 0), ("netB", 0, 1),
                                          ("100sumAB", 0.01, 1)])
def test_conv3d_init_methods(specs, method, wa, wb):
    spec = _build(specs, init_method=method)
    k = spec.params["conv3Df"].value
    assert k.shape == (3, 3, 3, 2 * C, C) and k.dtype == np.float32
    g = gaussian3()
    centre = k[1, 1, 1]
    np.testing.assert_allclose(centre[:C], wa * np.eye(C) * g[1, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(centre[C:], wb * np.eye(C) * g[1, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(k[0, 0, 0, 0, 0] / centre[0, 0] if wa else 0, np.exp(-1.5) if wa else 0, rtol=1e-6)
    assert np.all(spec.params["conv3Db"].value == 0)


def test_gaussian_and_random_inits():
    g = gaussian3()
    assert g.shape == (3, 3, 3) and abs(g.sum() - 1) < 1e-12 and g[1, 1, 1] == g.max()
    w = init_weight("xavierimproved", 1, 1, 16, 8, rng=np.random.default_rng(1))
    assert w.shape == (1, 1, 16, 8) and w.dtype == np.float32 and 0.2 < w.std() < 0.8  # sqrt(2/8) = 0.5
    k, b = conv3d_fusion_filter(8, 8, 8, "uniformly")
    assert np.allclose(k.sum(axis=(0, 1, 2)), 1 / 16)
    with pytest.raises(MatConvPortError):
        init_weight("nope", 1, 1, 2, 1)


def test_unequal_widths_follow_the_fused_tower():
    k, _ = conv3d_fusion_filter(6, 4, 6)
    assert k.shape == (3, 3, 3, 10, 6)
    assert np.array_equal(k[1, 1, 1, :6] > 0, np.eye(6, dtype=bool))
    assert np.array_equal(k[1, 1, 1, 6:] > 0, np.eye(4, 6, dtype=bool))


def test_missing_fusion_layer(specs):
    with pytest.raises(ModelFormatError, match="relu9_9"):
        _build(specs, fusion_layers=[("relu9_9", "relu9_9")])


def test_cli_user_errors(stream_files, tmp_path):
    out = str(tmp_path / "f.pt")
    runner = CliRunner()
    r = runner.invoke(main, ["fuse", *stream_files, "-o", out, "--layer", "nonexistent"])
    assert r.exit_code == 2 and "nonexistent" in r.output and "Traceback" not in r.output
    r = runner.invoke(main, ["fuse", *stream_files, "-o", out, "--type", "sum", "--conv3d"])
    assert r.exit_code == 2 and "sum" in r.output
    r = runner.invoke(main, ["fuse", stream_files[0], str(tmp_path / "missing.mat"), "-o", out])
    assert r.exit_code == 2 and "missing.mat" in r.output
    bad = tmp_path / "bad.mat"
    bad.write_bytes(b"not a mat file at all")
    r = runner.invoke(main, ["fuse", stream_files[0], str(bad), "-o", out])
    assert r.exit_code == 2 and "bad.mat" in r.output and len(r.output.strip().splitlines()) == 1
    r = runner.invoke(main, ["fuse", *stream_files, "-o", str(tmp_path / "nodir" / "f.pt")])
    assert r.exit_code == 2
    assert not os.path.exists(out)


def test_cli_options_reach_the_build(stream_files, tmp_path):
    from matconv_port import load_model

    out = str(tmp_path / "f.pt")
    r = CliRunner().invoke(main, ["fuse", *stream_files, "-o", out, "--type", "sum", "--fuse-into", "temporal",
                                  "--no-pool3d", "--dropout", "0.5", "--remove-fuse-from"])
    assert r.exit_code == 0, r.output
    m = load_model(out)
    types = {l.name: l.type for l in m.layer_specs}
    assert types["relu5_3_concat"] == "dagnn.Sum" and "pool5_temporal" in types and "fc6_spatial" not in types
    assert "dagnn.Pooling3D" not in types.values()
