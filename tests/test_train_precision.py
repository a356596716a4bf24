"""``--precision exact|tf32|bf16`` for training: bf16 trains (CPU autocast) with finite
losses, the forward really runs in bfloat16, the backward leaves fp32 gradients,
``--amp`` is bf16, and exact/tf32 on CPU train identically."""
import math

import pytest
import torch

from matconv_port.network import MatConvNetModel
from matconv_port.train.archs import demo
from matconv_port.train.loop import Trainer, TrainOptions, forward_backward, objective_layers

SIZE = (16, 16)
WIDTHS = (4, 6, 8, 8)


@pytest.fixture(scope="module")
def data_root(synthetic_train_root):
    return synthetic_train_root


def _net():
    return MatConvNetModel(demo(2, "flow", dropout=0.5, seed=0, image_size=SIZE, widths=WIDTHS))


def _opts(data_root, out, **kw):
    base = dict(kind="flow", data_root=data_root, out=str(out), learning_rate=[0.02], num_epochs=1, epoch_factor=2,
                batch_size=4, num_sub_batches=2, dropout=0.5, augmentation="multiScaleRegular", frames_per_clip=1,
                final_eval=False, progress=False, seed=7, device="cpu", validate=True, threads=1)
    base.update(kw)
    return TrainOptions(**base)


def _params(m):
    return {n: p.detach().clone() for n, p in m.named_matconvnet_params()}


def test_options_resolve_precision():
    assert TrainOptions(kind="rgb", data_root="x", out="y").precision == "exact"
    assert TrainOptions(kind="rgb", data_root="x", out="y", amp=True).precision == "bf16"
    assert TrainOptions(kind="rgb", data_root="x", out="y", precision="tf32").precision == "tf32"
    from matconv_port.errors import MatConvPortError

    with pytest.raises(MatConvPortError, match="--amp means --precision bf16"):
        TrainOptions(kind="rgb", data_root="x", out="y", precision="exact", amp=True)


def test_bf16_forward_runs_in_bfloat16_with_fp32_grads():
    m = _net()
    m.train()
    x = torch.randn(4, 20, *SIZE)
    inputs = {"input": x, "label": torch.tensor([1.0, 2.0, 1.0, 2.0])}
    values, _, heads = forward_backward(m, inputs, 4, -1, objective_layers(m), precision="bf16")
    pred = values[m.layer_specs[objective_layers(m)[0]].inputs[0]]
    assert pred.dtype == torch.bfloat16
    assert all(math.isfinite(v) for v in heads.values())
    g = m.param("conv1_1f").grad
    assert g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() and g.abs().sum() > 0
    # exact: fp32 all the way
    m2 = _net()
    m2.train()
    values, _, _ = forward_backward(m2, inputs, 4, -1, objective_layers(m2), precision="exact")
    assert values[m2.layer_specs[objective_layers(m2)[0]].inputs[0]].dtype == torch.float32
    assert not torch.is_autocast_enabled("cpu")  # the scope is closed again


def test_bf16_training_finite_and_params_change(data_root, tmp_path):
    m = _net()
    before = _params(m)
    stats = Trainer(m, _opts(data_root, tmp_path, precision="bf16"), log=lambda s: None).fit()
    row = stats["train"][0]
    assert math.isfinite(row["loss"]) and math.isfinite(stats["val"][0]["loss"])
    after = _params(m)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in after.values())
    assert sum(not torch.equal(before[n], after[n]) for n in before) >= len(before) // 2


def test_exact_and_tf32_train_the_same_on_cpu(data_root, tmp_path):
    a, b = _net(), _net()
    Trainer(a, _opts(data_root, tmp_path / "a", precision="exact", validate=False), log=lambda s: None).fit()
    Trainer(b, _opts(data_root, tmp_path / "b", precision="tf32", validate=False), log=lambda s: None).fit()
    pa, pb = _params(a), _params(b)
    for n in pa:
        assert torch.equal(pa[n], pb[n]), n  # TF32 flags have no effect on CPU
