"""Training with the paper's recipe (``cnn_train_dag.m`` + ``cnn_ucf101_*.m``).

* :class:`MatConvNetSGD` (:mod:`.optim`): MatConvNet's exact SGD update.
* :mod:`.archs`: nets to train (``demo``, ``vgg16``), ImageNet init of single streams.
* :mod:`.sampling`: the original training clip sampling and augmentation.
* :mod:`.data`: reading frames/flow and assembling sub-batches.
* :mod:`.loop`: :func:`train` (epochs, sub-batches, backprop depth, checkpoints, resume).
"""
from matconv_port.train.optim import MatConvNetSGD, matconvnet_param_groups

__all__ = ["MatConvNetSGD", "matconvnet_param_groups"]
