"""Default training options per stream and net, from the original scripts.

* ``fusion/paper`` (``cnn_ucf101_fusion.m``): lr ``[1e-3 1e-3 1e-4 1e-5 1e-6]``,
  epochFactor 10, batch 96 in 96 sub-batches, dropout 0.85, backprop depth
  ``relu5_3_spatial``, 5-frame clips at strides 5..15, ``noCtr`` crops.
* ``rgb/paper`` (``cnn_ucf101_spatial.m``, VGG-16): lr ``[1e-3 x3, 5e-4 x5, 5e-5 x2,
  5e-6 x2]``, epochFactor 10, batch 128 in 16 sub-batches, ``borders25`` crops, one
  random frame; dropout 0.85 (the released ``ucf101-img-vgg16-split1-dr0.85`` net).
* ``flow/paper`` (``cnn_ucf101_temporal.m``, VGG-16): lr ``[5e-4 x10, 5e-5 x5, 5e-6]``,
  epochFactor 100, batch 128 in 8 sub-batches, ``multiScaleRegular`` crops, one
  random 20-channel stack; dropout 0.9 (the released ``...TVL1flow-vgg16-split1-dr0.9``).
* ``*/demo``: the small ``demo`` net on the bundled synthetic data (CPU, about a
  minute each). The synthetic classes are motion directions up to a horizontal
  mirror, so flips (training) and flip-averaging (test protocols) keep the class;
  the flow net uses a higher learning rate for 3 epochs, then 1e-3.
"""
from __future__ import annotations

from typing import Any

PAPER_FUSION: dict[str, Any] = dict(learning_rate=[1e-3, 1e-3, 1e-4, 1e-5, 1e-6], epoch_factor=10, batch_size=96,
                                   num_sub_batches=96, dropout=0.85, backprop_depth="relu5_3_spatial",
                                   augmentation="noCtr", frames_per_clip=5)
PAPER_RGB: dict[str, Any] = dict(learning_rate=[1e-3] * 3 + [5e-4] * 5 + [5e-5] * 2 + [5e-6] * 2, epoch_factor=10,
                                batch_size=128, num_sub_batches=16, dropout=0.85, backprop_depth=None,
                                augmentation="borders25", frames_per_clip=1)
PAPER_FLOW: dict[str, Any] = dict(learning_rate=[5e-4] * 10 + [5e-5] * 5 + [5e-6], epoch_factor=100,
                                 batch_size=128, num_sub_batches=8, dropout=0.9, backprop_depth=None,
                                 augmentation="multiScaleRegular", frames_per_clip=1)

DEMO_COMMON: dict[str, Any] = dict(batch_size=16, num_sub_batches=1, cache_frames=50000)
DEMO_RGB: dict[str, Any] = dict(DEMO_COMMON, learning_rate=[1e-3, 1e-3, 1e-4], epoch_factor=8, dropout=0.5,
                               backprop_depth=None, augmentation="borders25", frames_per_clip=1)
DEMO_FLOW: dict[str, Any] = dict(DEMO_COMMON, learning_rate=[1e-2] * 3 + [1e-3] * 3, epoch_factor=20, dropout=0.5,
                                backprop_depth=None, augmentation="multiScaleRegular", frames_per_clip=1)
DEMO_FUSION: dict[str, Any] = dict(DEMO_COMMON, learning_rate=[1e-3, 1e-3, 1e-4], epoch_factor=6, dropout=0.5,
                                  backprop_depth="relu5_3_spatial", augmentation="noCtr", frames_per_clip=5)

RECIPES: dict[tuple[str, str], dict[str, Any]] = {
    ("fusion", "paper"): PAPER_FUSION,
    ("rgb", "paper"): PAPER_RGB,
    ("flow", "paper"): PAPER_FLOW,
    ("fusion", "demo"): DEMO_FUSION,
    ("rgb", "demo"): DEMO_RGB,
    ("flow", "demo"): DEMO_FLOW,
}


def recipe(kind: str, name: str) -> dict[str, Any]:
    """A copy of the defaults for ``kind`` (rgb/flow/fusion) and recipe ``name`` (paper/demo)."""
    return {k: (list(v) if isinstance(v, list) else v) for k, v in RECIPES[(kind, name)].items()}
