"""`matconv-port train` end to end on tiny data: --init from an ImageNet-style .mat,
--arch demo for both streams, then `train fusion` on their net-final.pt files."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from matconv_port.cli import main


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from matconv_port.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("syn")
    make_synthetic_dataset(str(root), num_classes=2, videos_per_class=4, frames=16, height=56, width=64, seed=1)
    return str(root)


def _tiny_imagenet_mat(path):
    from matconv_port.converters.matfile import write_mat
    from matconv_port.converters.mattypes import MatCell

    rng = np.random.default_rng(0)

    def conv(name, h, cin, cout, pad):
        return {"type": "conv", "name": name,
                "weights": MatCell([rng.standard_normal((h, h, cin, cout)).astype(np.float32) * 0.1,
                                    np.zeros((1, cout), np.float32)]),
                "stride": np.array([[1.0, 1.0]]), "pad": np.array([[pad] * 4], dtype=float)}

    layers = MatCell([conv("conv1", 3, 3, 4, 1.0), {"type": "relu", "name": "relu1"},
                      {"type": "pool", "name": "pool1", "method": "max", "pool": np.array([[2.0, 2.0]]),
                       "stride": np.array([[2.0, 2.0]]), "pad": np.zeros((1, 4))},
                      conv("fc6", 8, 4, 8, 0.0), {"type": "relu", "name": "relu6"},
                      conv("fc7", 1, 8, 8, 0.0), {"type": "relu", "name": "relu7"},
                      conv("fc8", 1, 8, 1000, 0.0), {"type": "softmax", "name": "prob"}])
    meta = {"normalization": {"imageSize": np.array([[16.0, 16.0, 3.0]]),
                              "averageImage": np.array([120.0, 110.0, 100.0], np.float32).reshape(1, 1, 3)}}
    write_mat(str(path), {"layers": layers, "meta": meta})


FAST = ["--epochs", "1", "--epoch-factor", "1", "--batch-size", "4", "--sub-batches", "2", "--no-final-eval",
        "--no-progress", "--device", "cpu", "--threads", "1"]


def test_train_flow_from_imagenet_mat(data_root, tmp_path):
    from matconv_port import load_model

    mat = tmp_path / "imagenet-tiny.mat"
    _tiny_imagenet_mat(mat)
    out = tmp_path / "flow"
    r = CliRunner().invoke(main, ["train", "flow", "--init", str(mat), "--data-root", data_root, "--out", str(out),
                                  "--lr", "0.01"] + FAST)
    assert r.exit_code == 0, r.output
    assert "learning_rate: [0.01]" in r.output and "augmentation: multiScaleRegular" in r.output  # printed defaults
    assert "train: epoch 01:" in r.output
    m = load_model(str(out / "net-final.pt"))
    assert m.param("conv1f").shape[1] == 20  # cross-modality conv1 (torch layout Cout x Cin x H x W)
    assert m.param("fc8f").shape[0] == 2
    stats = json.loads((out / "stats.json").read_text())
    assert stats["train"][0]["epoch"] == 1 and "val" in stats


def test_demo_streams_then_fusion(data_root, tmp_path):
    from matconv_port import load_model

    runner = CliRunner()
    for kind in ("rgb", "flow"):
        r = runner.invoke(main, ["train", kind, "--arch", "demo", "--data-root", data_root,
                                 "--out", str(tmp_path / kind)] + FAST)
        assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["train", "fusion", "--rgb", str(tmp_path / "rgb" / "net-final.pt"),
                             "--flow", str(tmp_path / "flow" / "net-final.pt"), "--data-root", data_root,
                             "--out", str(tmp_path / "fusion"), "--sub-batches", "4"] + FAST)
    assert r.exit_code == 0, r.output
    assert "backprop_depth: relu5_3_spatial" in r.output and "frames_per_clip: 5" in r.output
    m = load_model(str(tmp_path / "fusion" / "net-final.pt"))
    types = [l.type for l in m.layer_specs]
    assert "dagnn.Conv3D" in types and types.count("dagnn.Pooling3D") == 2 and "dagnn.Concat" in types
    assert len(m.prediction_vars) == 2
    # rerunning the same command resumes (nothing left to train) instead of starting over
    r = runner.invoke(main, ["train", "fusion", "--rgb", str(tmp_path / "rgb" / "net-final.pt"),
                             "--flow", str(tmp_path / "flow" / "net-final.pt"), "--data-root", data_root,
                             "--out", str(tmp_path / "fusion"), "--sub-batches", "4"] + FAST)
    assert r.exit_code == 0 and "resuming by loading epoch 1" in r.output
