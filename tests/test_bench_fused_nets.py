"""The GPU benchmarks' baseline is the same net as ours: benchmarks/fused_nets.py's plain
PyTorch fused VGG-16 (Linear or conv classifier), given our weights by copy_weights,
computes our outputs (narrow widths; the full-size net only differs in widths)."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from fused_nets import SMALL_WIDTHS, PlainFusedVGG16, build_fused_model, copy_weights  # noqa: E402


@pytest.mark.parametrize("classifier,size,fc6", [("linear", (96, 96), 3), ("conv", (48, 69), 1)])
def test_plain_fused_net_equals_ours(classifier, size, fc6):
    model = build_fused_model(5, 7, widths=SMALL_WIDTHS, fc_width=16, fc6_size=fc6).eval()
    plain = PlainFusedVGG16(5, 7, widths=SMALL_WIDTHS, fc_width=16, fc6_size=fc6, classifier=classifier).eval()
    copy_weights(plain, model)
    g = torch.Generator().manual_seed(0)
    rgb = torch.randn(10, 3, *size, generator=g) * 50
    flow = torch.randn(10, 20, *size, generator=g) * 20
    with torch.inference_mode():
        ours, theirs = model(rgb, flow, num_videos=2), plain(rgb, flow)
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs):
        assert a.shape[:2] == b.shape[:2] == (2, 7)
        torch.testing.assert_close(a.reshape(b.shape), b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))


def test_frozen_towers_train_what_the_recipe_trains():
    from matconv_port.train.loop import trainable_param_names

    model = build_fused_model(5, 7, widths=SMALL_WIDTHS, fc_width=16, fc6_size=1)
    plain = PlainFusedVGG16(5, 7, widths=SMALL_WIDTHS, fc_width=16, fc6_size=1, classifier="linear",
                            freeze_towers=True)
    trainable = trainable_param_names(model, "relu5_3_spatial")
    ours = sum(p.numel() for n, p in model.named_matconvnet_params() if n in trainable)
    assert ours == sum(p.numel() for p in plain.parameters() if p.requires_grad)
    assert not any(n.startswith("conv5_3") for n in trainable) and "conv3Df" in trainable
