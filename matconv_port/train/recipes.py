"""Default training options per stream and net: THE table of the original scripts' recipes.

Checked against the fork's ``cnn_ucf101_spatial.m``, ``cnn_ucf101_temporal.m``,
``cnn_ucf101_fusion.m`` (the VGG-16 branches) and the defaults of its ``cnn_train_dag.m``
(``momentum 0.9``, ``weightDecay 5e-4``, momentum reset every epoch):

* ``rgb/paper`` (``cnn_ucf101_spatial.m``, VGG-16): lr ``[1e-3 x3, 5e-4 x5, 5e-5 x2,
  5e-6 x2]``, epochFactor 10, batch 128 in ``ceil(16 / numGPUs)`` sub-batches,
  ``borders25`` crops, one random frame per video; ``backpropDepth = {'layer37',
  'layer37', 'layer37'}``: for the first 3 epochs only the layers after ``layer37`` are
  back-propagated. ``layer37`` is the name ``dagnn.DagNN.fromSimpleNN`` gives the
  unnamed DropOut that ``replace_last_layer`` inserts after ``relu7``, i.e. only the new
  classifier trains for 3 epochs; here that is :data:`CLASSIFIER_ONLY`, resolved on the
  net to the layer feeding the classifier (``drop_relu7``; ``relu7`` without dropout).
  Dropout 0.85: the script's own default is 0 (dropout removed), but the released
  ``ucf101-img-vgg16-split1-dr0.85`` net, which ``cnn_ucf101_fusion.m`` loads, was
  trained with 0.85.
* ``flow/paper`` (``cnn_ucf101_temporal.m``, VGG-16): lr ``[5e-4 x10, 5e-5 x5, 5e-6]``,
  epochFactor 100, batch 128 in ``ceil(8 / numGPUs)`` sub-batches,
  ``multiScaleRegular`` crops, one random 20-channel stack; dropout 0.9 (the script
  says 0.8; the released ``...TVL1flow-vgg16-split1-dr0.9``, loaded by the fusion
  script, was trained with 0.9); back-propagates everything.
* ``fusion/paper`` (``cnn_ucf101_fusion.m``): lr ``[1e-3 1e-3 1e-4 1e-5 1e-6]``,
  epochFactor 10, batch 96 in ``96 / numGPUs`` sub-batches, dropout 0.85, backprop
  depth ``relu5_3_spatial`` (every epoch), 5-frame clips at temporal strides 5..15,
  ``noCtr`` crops, both heads' losses back-propagated (``backpropFuseFrom = 1``).
* Sub-batch counts are per GPU, as in the scripts (``ceil(16 / numel(opts.train.gpus))``):
  the table holds the one-GPU value and :func:`sub_batches_per_process` divides it by
  the number of processes (the summed gradient is the same; only the videos per
  forward, i.e. the memory, change). ``--sub-batches`` given by hand is used as is.
* Epochs: ``cnn_train_dag`` runs ``numEpochs`` = 300 (2000 for fusion), holding the
  last learning rate until the user stops it; here a run ends after the schedule
  (``len(learning_rate)`` epochs) unless ``--epochs`` says otherwise.
* ``*/demo``: the small ``demo`` net on the bundled synthetic data (CPU, about a
  minute each). The synthetic classes are motion directions up to a horizontal
  mirror, so flips (training) and flip-averaging (test protocols) keep the class;
  the flow net uses a higher learning rate for 3 epochs, then 1e-3.
"""
from __future__ import annotations

import math
from typing import Any

#: ``backprop_depth`` meaning "only the classifier": the layer whose output the
#: classifier reads (MatConvNet's ``layer37`` of the spatial VGG-16 recipe)
CLASSIFIER_ONLY = "@classifier"

#: cnn_train_dag.m's defaults, used by every recipe
SGD_DEFAULTS: dict[str, Any] = dict(momentum=0.9, weight_decay=5e-4)

PAPER_FUSION: dict[str, Any] = dict(SGD_DEFAULTS, learning_rate=[1e-3, 1e-3, 1e-4, 1e-5, 1e-6], epoch_factor=10,
                                   batch_size=96, num_sub_batches=96, dropout=0.85, backprop_depth="relu5_3_spatial",
                                   backprop_depth_epochs=None, augmentation="noCtr", frames_per_clip=5,
                                   temporal_strides=list(range(5, 16)))
PAPER_RGB: dict[str, Any] = dict(SGD_DEFAULTS, learning_rate=[1e-3] * 3 + [5e-4] * 5 + [5e-5] * 2 + [5e-6] * 2,
                                epoch_factor=10, batch_size=128, num_sub_batches=16, dropout=0.85,
                                backprop_depth=CLASSIFIER_ONLY, backprop_depth_epochs=3,
                                augmentation="borders25", frames_per_clip=1)
PAPER_FLOW: dict[str, Any] = dict(SGD_DEFAULTS, learning_rate=[5e-4] * 10 + [5e-5] * 5 + [5e-6], epoch_factor=100,
                                 batch_size=128, num_sub_batches=8, dropout=0.9, backprop_depth=None,
                                 backprop_depth_epochs=None, augmentation="multiScaleRegular", frames_per_clip=1)

DEMO_COMMON: dict[str, Any] = dict(SGD_DEFAULTS, batch_size=16, num_sub_batches=1, cache_frames=50000,
                                   backprop_depth_epochs=None)
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


def sub_batches_per_process(one_gpu: int, world_size: int) -> int:
    """The scripts' ``ceil(n / numel(opts.train.gpus))``: a recipe's one-GPU sub-batch
    count for each of ``world_size`` processes."""
    return max(1, math.ceil(int(one_gpu) / max(1, int(world_size))))


def resolve_backprop_depth(depth: str | None, spec) -> str | None:
    """A recipe's ``backprop_depth`` as a layer name of ``spec`` (a NetSpec):
    :data:`CLASSIFIER_ONLY` becomes the layer producing the classifier's input (the
    classifier being the layer that produces the first objective loss's prediction)."""
    if depth != CLASSIFIER_ONLY:
        return depth
    from matconv_port.errors import MatConvPortError
    from matconv_port.fusion.surgery import objective_losses

    losses = objective_losses(spec.layers)
    producers = {o: l for l in spec.layers for o in l.outputs}
    classifier = producers.get(losses[0].inputs[0]) if losses else None
    before = producers.get(classifier.inputs[0]) if classifier is not None and classifier.inputs else None
    if before is None:
        raise MatConvPortError("the recipe back-propagates only the classifier first, but this net's classifier "
                               "input has no producing layer; give --backprop-depth LAYER or 'none'")
    return before.name
