"""Nets to train and the single-stream ImageNet init of cnn_ucf101_spatial/_temporal.m."""
import numpy as np
import torch
from click.testing import CliRunner

from matconv_port.netspec import LayerSpec, NetSpec, ParamSpec
from matconv_port.network import MatConvNetModel
from matconv_port.train.archs import demo, init_from_imagenet, vgg16


def _fake_imagenet_simplenn():
    rng = np.random.default_rng(0)
    p = {
        "conv1f": ParamSpec("conv1f", rng.standard_normal((3, 3, 3, 4)).astype(np.float32)),
        "conv1b": ParamSpec("conv1b", np.zeros((1, 4), np.float32)),
        "fc6f": ParamSpec("fc6f", rng.standard_normal((4, 4, 4, 8)).astype(np.float32)),
        "fc6b": ParamSpec("fc6b", np.zeros((1, 8), np.float32)),
        "fc7f": ParamSpec("fc7f", rng.standard_normal((1, 1, 8, 8)).astype(np.float32)),
        "fc7b": ParamSpec("fc7b", np.zeros((1, 8), np.float32)),
        "fc8f": ParamSpec("fc8f", rng.standard_normal((1, 1, 8, 1000)).astype(np.float32)),
        "fc8b": ParamSpec("fc8b", np.ones((1, 1000), np.float32)),
    }
    L = [LayerSpec("conv1", "dagnn.Conv", ["x0"], ["x1"], ["conv1f", "conv1b"], {"pad": [1, 1, 1, 1]}),
         LayerSpec("relu1", "dagnn.ReLU", ["x1"], ["x2"]),
         LayerSpec("pool1", "dagnn.Pooling", ["x2"], ["x3"], [], {"poolSize": [2, 2], "stride": [2, 2], "method": "max"}),
         LayerSpec("fc6", "dagnn.Conv", ["x3"], ["x4"], ["fc6f", "fc6b"]),
         LayerSpec("relu6", "dagnn.ReLU", ["x4"], ["x5"]),
         LayerSpec("fc7", "dagnn.Conv", ["x5"], ["x6"], ["fc7f", "fc7b"]),
         LayerSpec("relu7", "dagnn.ReLU", ["x6"], ["x7"]),
         LayerSpec("fc8", "dagnn.Conv", ["x7"], ["x8"], ["fc8f", "fc8b"]),
         LayerSpec("prob", "dagnn.SoftMax", ["x8"], ["x9"])]
    spec = NetSpec(layers=L, params=p, meta={"normalization": {"imageSize": [8.0, 8.0, 3.0],
                                                               "averageImage": np.array([1.0, 2.0, 3.0]).reshape(1, 1, 3)}},
                   source_format="simplenn")
    spec.rebuild_vars()
    return spec


def test_flow_init_cross_modality_and_classifier():
    src = _fake_imagenet_simplenn()
    spec = init_from_imagenet(src, "flow", 5, dropout=0.9, seed=1)
    w = spec.params["conv1f"].value
    assert w.shape == (3, 3, 20, 4)
    np.testing.assert_allclose(w[:, :, 7], src.params["conv1f"].value.mean(axis=2), rtol=1e-6)
    assert spec.params["fc8f"].value.shape == (1, 1, 8, 5) and np.abs(spec.params["fc8f"].value).max() < 0.1
    assert spec.params["fc8b"].value.shape == (1, 5) and not spec.params["fc8b"].value.any()
    types = [l.type for l in spec.layers]
    assert "dagnn.SoftMax" not in types and types.count("dagnn.DropOut") == 2
    assert [l.name for l in spec.layers][-3:] == ["loss_fc8", "top1error", "top5error"]
    assert (spec.params["fc8b"].learning_rate, spec.params["fc8b"].weight_decay) == (2.0, 0.0)
    assert spec.meta["normalization"]["imageSize"][2] == 20
    m = MatConvNetModel(spec)
    assert m.input_vars == ["input"] and m.label_vars == ["label"]
    out = m.forward_vars({"input": torch.randn(2, 20, 8, 8), "label": torch.tensor([1.0, 5.0])})
    assert out["objective_fc8"].numel() == 1


def test_rgb_init_keeps_rgb_conv1():
    src = _fake_imagenet_simplenn()
    spec = init_from_imagenet(src, "rgb", 3, dropout=0.0)
    np.testing.assert_array_equal(spec.params["conv1f"].value, src.params["conv1f"].value)
    assert not any(l.type == "dagnn.DropOut" for l in spec.layers)


def test_demo_and_vgg16_shapes():
    m = MatConvNetModel(demo(4, "flow"))
    out = m.forward_vars({"input": torch.randn(2, 20, 48, 48)})
    assert tuple(out[m.prediction_vars[0]].shape) == (2, 4, 1, 1)
    spec = vgg16(101, "rgb")
    assert spec.params["conv1_1f"].value.shape == (3, 3, 3, 64)
    assert spec.params["fc6f"].value.shape == (7, 7, 512, 4096)
    assert spec.params["fc8f"].value.shape == (1, 1, 4096, 101)


def test_cli_errors_exit_2(tmp_path):
    from matconv_port.cli import main

    r = CliRunner().invoke(main, ["train", "flow", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "exactly one of" in r.output
    r = CliRunner().invoke(main, ["train", "rgb", "--arch", "demo", "--data-root", str(tmp_path / "none"),
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "split" in r.output.lower()
