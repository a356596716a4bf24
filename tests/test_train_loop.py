"""The training loop: loss falls, resume reaches identical parameters, backprop depth,
fused-net training with both heads, checkpoints loadable by load_model."""
import os

import numpy as np
import pytest
import torch

from matconv_port.network import MatConvNetModel
from matconv_port.train.archs import demo
from matconv_port.train.loop import (
    Trainer,
    TrainOptions,
    find_last_checkpoint,
    trainable_param_names,
)

SIZE = (16, 16)
WIDTHS = (4, 6, 8, 8)


@pytest.fixture(scope="module")
def data_root(synthetic_train_root):
    return synthetic_train_root


def _net(stream, seed=0):
    return MatConvNetModel(demo(2, stream, dropout=0.5, seed=seed, image_size=SIZE, widths=WIDTHS))


def _opts(data_root, out, kind="flow", **kw):
    base = dict(kind=kind, data_root=data_root, out=str(out), learning_rate=[0.02], epoch_factor=3, batch_size=4,
                num_sub_batches=2, dropout=0.5, augmentation="borders25" if kind == "rgb" else "multiScaleRegular",
                frames_per_clip=1, final_eval=False, progress=False, seed=7, device="cpu", validate=False)
    base.update(kw)
    return TrainOptions(**base)


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_matconvnet_params()}


def test_loss_falls(data_root, tmp_path):
    stats = Trainer(_net("flow"), _opts(data_root, tmp_path, num_epochs=4, learning_rate=[0.05]), log=lambda s: None).fit()
    objs = [r["loss"] for r in stats["train"]]
    assert objs[-1] < objs[0]
    assert os.path.exists(tmp_path / "stats.json") and os.path.exists(tmp_path / "net-train.png")
    assert find_last_checkpoint(str(tmp_path)) == 4


def test_resume_gives_identical_parameters(data_root, tmp_path):
    a = _net("flow")
    Trainer(a, _opts(data_root, tmp_path / "a", num_epochs=2, learning_rate=[0.02, 0.01], validate=True),
            log=lambda s: None).fit()
    b = _net("flow")
    Trainer(b, _opts(data_root, tmp_path / "b", num_epochs=1, learning_rate=[0.02, 0.01], validate=True),
            log=lambda s: None).fit()
    after_one = _params(b)
    logs = []
    c = _net("flow")  # a fresh process: initial weights, then resume from net-epoch-1.pt
    stats = Trainer(c, _opts(data_root, tmp_path / "b", num_epochs=2, learning_rate=[0.02, 0.01], validate=True),
                    log=logs.append).fit()
    assert any("resuming by loading epoch 1" in s for s in logs)
    assert [r["epoch"] for r in stats["train"]] == [1, 2]
    pa, pc = _params(a), _params(c)
    assert any(not torch.equal(after_one[n], pc[n]) for n in pc)  # epoch 2 really trained
    for n in pa:
        assert torch.equal(pa[n], pc[n]), n
    # --no-resume starts over
    d = _net("flow")
    logs = []
    Trainer(d, _opts(data_root, tmp_path / "b", num_epochs=1, resume=False), log=logs.append).fit()
    assert not any("resuming" in s for s in logs)


def test_checkpoint_is_a_loadable_model(data_root, tmp_path):
    from matconv_port import load_model

    m = _net("rgb")
    Trainer(m, _opts(data_root, tmp_path, kind="rgb", num_epochs=1), log=lambda s: None).fit()
    for name in ("net-epoch-1.pt", "net-final.pt"):
        loaded = load_model(str(tmp_path / name))
        x = torch.randn(2, 3, *SIZE)
        m.eval()
        torch.testing.assert_close(loaded(x), m(x), rtol=0, atol=0)


def test_backprop_depth_freezes_lower_layers(data_root, tmp_path):
    m = _net("flow")
    names = trainable_param_names(m, "relu5_3")
    assert names == {"fc6f", "fc6b", "fc8f", "fc8b"}
    before = _params(m)
    Trainer(m, _opts(data_root, tmp_path, num_epochs=1, backprop_depth="relu5_3"), log=lambda s: None).fit()
    after = _params(m)
    for n in before:
        assert torch.equal(before[n], after[n]) == (n not in names), n


def test_fused_training_both_heads(data_root, tmp_path):
    from matconv_port.fusion import FusionOptions, build_fused_netspec

    a = demo(2, "rgb", seed=1, image_size=SIZE, widths=WIDTHS)
    b = demo(2, "flow", seed=2, image_size=SIZE, widths=WIDTHS)
    fused = MatConvNetModel(build_fused_netspec(a, b, FusionOptions(dropout_rate=0.5)))
    before = _params(fused)
    opts = _opts(data_root, tmp_path, kind="fusion", num_epochs=1, frames_per_clip=5, augmentation="noCtr",
                 backprop_depth="relu5_3_spatial", batch_size=4, num_sub_batches=4, validate=True)
    stats = Trainer(fused, opts, log=lambda s: None).fit()
    row = stats["train"][0]
    heads = [k for k in row if k.startswith("loss_") and "." not in k]
    assert len(heads) == 2
    assert "top1err" in stats["val"][0]
    after = _params(fused)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert "conv3Df" in changed
    assert not any(n.startswith(("conv1_1", "conv2_1", "conv5_3")) for n in changed)


def test_save_matconvnet_checkpoints(data_root, tmp_path):
    from matconv_port import load_model

    m = _net("flow")
    Trainer(m, _opts(data_root, tmp_path, num_epochs=1, save_matconvnet=True), log=lambda s: None).fit()
    assert (tmp_path / "net-epoch-1.mat").exists() and (tmp_path / "net-final.mat").exists()
    mat = load_model(str(tmp_path / "net-final.mat"))
    pt = load_model(str(tmp_path / "net-final.pt"))
    x = torch.randn(3, 20, *SIZE)
    torch.testing.assert_close(mat(x), pt(x), rtol=1e-6, atol=1e-6)


def test_batchnorm_moments_average_rule(data_root, tmp_path, monkeypatch):
    """Moments = (1 - lr) m + lr / N * sum over sub-batches of (batch moments x items)."""
    from matconv_port.netspec import LayerSpec, ParamSpec
    from matconv_port.train import loop

    spec = demo(2, "flow", seed=0, image_size=SIZE, widths=WIDTHS)
    c = WIDTHS[0]
    i = [l.name for l in spec.layers].index("relu1_1")
    spec.layers[i].inputs = ["xbn"]
    spec.layers.insert(i, LayerSpec("bn1", "dagnn.BatchNorm", ["x1"], ["xbn"], ["bn1m", "bn1b", "bn1x"], {"epsilon": 1e-4}))
    spec.params["bn1m"] = ParamSpec("bn1m", np.ones((c, 1), np.float32), 2.0, 0.0)
    spec.params["bn1b"] = ParamSpec("bn1b", np.zeros((c, 1), np.float32), 1.0, 0.0)
    m0 = np.stack([np.full(c, 0.5), np.full(c, 2.0)], axis=1).astype(np.float32)
    spec.params["bn1x"] = ParamSpec("bn1x", m0.copy(), 0.3, 0.0)  # the model may share the array
    spec.rebuild_vars()
    model = MatConvNetModel(spec)
    seen = []
    real = loop.forward_backward

    def spy(model_, inputs, num_videos, *args, **kw):
        values, ctx, heads = real(model_, inputs, num_videos, *args, **kw)
        seen.append((ctx.batch_moments["bn1"].clone().double(), inputs["input"].shape[0]))
        return values, ctx, heads

    monkeypatch.setattr(loop, "forward_backward", spy)
    opts = _opts(data_root, tmp_path, num_epochs=1, epoch_factor=1, batch_size=64, num_sub_batches=3)
    Trainer(model, opts, log=lambda s: None).fit()
    n = sum(items for _, items in seen)  # one batch: every training video once
    assert len(seen) == 3
    der = sum(mom * items for mom, items in seen)
    expected = (1 - 0.3) * torch.from_numpy(m0).double() + (0.3 / n) * der
    torch.testing.assert_close(model.param("bn1x").double(), expected, rtol=1e-5, atol=1e-6)
    assert not torch.equal(model.param("bn1m"), torch.ones_like(model.param("bn1m")))  # multipliers trained by SGD


def test_backprop_depth_for_first_epochs_only(data_root, tmp_path):
    m = _net("flow")
    before = _params(m)
    opts = _opts(data_root, tmp_path, num_epochs=1, backprop_depth="relu5_3", backprop_depth_epochs=1)
    Trainer(m, opts, log=lambda s: None).fit()
    after1 = _params(m)
    assert torch.equal(before["conv1_1f"], after1["conv1_1f"]) and not torch.equal(before["fc8f"], after1["fc8f"])
    opts = _opts(data_root, tmp_path, num_epochs=2, backprop_depth="relu5_3", backprop_depth_epochs=1)
    Trainer(m, opts, log=lambda s: None).fit()  # resumes: epoch 2 back-propagates everything
    assert not torch.equal(after1["conv1_1f"], _params(m)["conv1_1f"])
