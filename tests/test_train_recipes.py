"""`train rgb|flow --init IMAGENET.mat` resolves to the paper's recipe (dry run: the
resolved options are printed and nothing is written), including the spatial stream's
classifier-only back-propagation for the first 3 epochs (``layer37`` of
cnn_ucf101_spatial.m), and the per-GPU sub-batch counts of the scripts."""
import ast
import re

import pytest
from click.testing import CliRunner

from matconv_port.cli import main
from test_train_cli import _tiny_imagenet_mat


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from matconv_port.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("syn")
    make_synthetic_dataset(str(root), num_classes=2, videos_per_class=2, frames=12, height=24, width=32, seed=1)
    mat = root / "imagenet-tiny.mat"
    _tiny_imagenet_mat(mat)
    return str(root), str(mat)


def _options(output: str) -> dict:
    out = {}
    for line in output.splitlines():
        m = re.fullmatch(r"  (\w+): (.*)", line)
        if m:
            try:
                out[m.group(1)] = ast.literal_eval(m.group(2))
            except (ValueError, SyntaxError):
                out[m.group(1)] = m.group(2)
    return out


def _dry(setup, tmp_path, kind, *extra, env=None):
    root, mat = setup
    r = CliRunner().invoke(main, ["train", kind, "--init", mat, "--data-root", root, "--out", str(tmp_path / "x"),
                                  "--device", "cpu", "--dry-run"] + list(extra), env=env)
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "x").exists()  # a dry run writes nothing
    return _options(r.output)


def test_train_rgb_init_is_the_papers_run(setup, tmp_path):
    o = _dry(setup, tmp_path, "rgb")
    assert o["learning_rate"] == [1e-3] * 3 + [5e-4] * 5 + [5e-5] * 2 + [5e-6] * 2
    assert o["backprop_depth"] == "drop_relu7" and o["backprop_depth_epochs"] == 3  # MatConvNet's 'layer37'
    assert (o["batch_size"], o["num_sub_batches"], o["epoch_factor"]) == (128, 16, 10)
    assert (o["momentum"], o["weight_decay"], o["dropout"]) == (0.9, 5e-4, 0.85)
    assert (o["augmentation"], o["frames_per_clip"], o["precision"]) == ("borders25", 1, "exact")
    assert o["reset_momentum_each_epoch"] is True


def test_classifier_only_depth_trains_only_the_classifier(setup):
    from matconv_port.loading import load_netspec_any
    from matconv_port.network import MatConvNetModel
    from matconv_port.train import archs
    from matconv_port.train.loop import trainable_param_names
    from matconv_port.train.recipes import CLASSIFIER_ONLY, resolve_backprop_depth

    spec = archs.init_from_imagenet(load_netspec_any(setup[1]), "rgb", 2, dropout=0.85)
    depth = resolve_backprop_depth(CLASSIFIER_ONLY, spec)
    assert depth == "drop_relu7"
    assert trainable_param_names(MatConvNetModel(spec), depth) == {"fc8f", "fc8b"}
    no_drop = archs.init_from_imagenet(load_netspec_any(setup[1]), "rgb", 2, dropout=0.0)
    assert resolve_backprop_depth(CLASSIFIER_ONLY, no_drop) == "relu7"


def test_train_flow_init_is_the_papers_run(setup, tmp_path):
    o = _dry(setup, tmp_path, "flow")
    assert o["learning_rate"] == [5e-4] * 10 + [5e-5] * 5 + [5e-6]
    assert (o["batch_size"], o["num_sub_batches"], o["epoch_factor"], o["dropout"]) == (128, 8, 100, 0.9)
    assert o["backprop_depth"] is None and o["augmentation"] == "multiScaleRegular"


def test_overrides_and_per_gpu_sub_batches(setup, tmp_path):
    o = _dry(setup, tmp_path, "rgb", "--backprop-depth", "none")
    assert o["backprop_depth"] is None
    o = _dry(setup, tmp_path, "rgb", "--backprop-depth", "relu6")
    assert o["backprop_depth"] == "relu6" and o["backprop_depth_epochs"] is None  # given alone: every epoch
    o = _dry(setup, tmp_path, "rgb", "--backprop-depth-epochs", "1")
    assert o["backprop_depth"] == "drop_relu7" and o["backprop_depth_epochs"] == 1
    # torchrun with 3 processes: ceil(16 / 3) sub-batches each, as ceil(16 / numel(opts.train.gpus))
    o = _dry(setup, tmp_path, "rgb", env={"WORLD_SIZE": "3"})
    assert o["num_sub_batches"] == 6 and o["batch_size"] == 128
    o = _dry(setup, tmp_path, "rgb", "--sub-batches", "4", env={"WORLD_SIZE": "3"})
    assert o["num_sub_batches"] == 4
    root, mat = setup
    r = CliRunner().invoke(main, ["train", "rgb", "--init", mat, "--data-root", root, "--out", str(tmp_path / "y"),
                                  "--device", "cpu", "--dry-run", "--backprop-depth", "conv9"])
    assert r.exit_code == 2 and "--backprop-depth conv9: the net has no such layer" in r.output


def test_fusion_recipe_table():
    from matconv_port.train.recipes import recipe, sub_batches_per_process

    f = recipe("fusion", "paper")
    assert f["learning_rate"] == [1e-3, 1e-3, 1e-4, 1e-5, 1e-6] and f["backprop_depth"] == "relu5_3_spatial"
    assert (f["batch_size"], f["num_sub_batches"], f["dropout"], f["frames_per_clip"]) == (96, 96, 0.85, 5)
    assert f["temporal_strides"] == list(range(5, 16)) and f["augmentation"] == "noCtr"
    assert sub_batches_per_process(96, 4) == 24 and sub_batches_per_process(16, 3) == 6
    assert sub_batches_per_process(1, 8) == 1
