"""Evaluation with the paper's protocols (installed as ``matconv_port.eval``).

Modules, one job each:

* :mod:`~matconv_port.eval.matlab`: MATLAB ``round``/``linspace``/colon, VLFeat
  ``vl_colsubset(..,'uniform')``, ``padarray(..,'symmetric','post')``.
* :mod:`~matconv_port.eval.splits`: UCF101/HMDB51 split lists, frame counting.
* :mod:`~matconv_port.eval.datasets`: the dataset registry (``--dataset`` choices).
* :mod:`~matconv_port.eval.sampling`: the original test-time frame sampling rules.
* :mod:`~matconv_port.eval.plan`: protocols (``fusion-paper``, ``fusion-consecutive``,
  ``dense25``, ``crops10``/``6``/``2``), per-video clip plans, ``--plan-only`` JSONL.
* :mod:`~matconv_port.eval.batches`: JPEG decoding and clip assembly in DataLoader
  workers; mirrors and mean subtraction on the model's device.
* :mod:`~matconv_port.eval.model_io`: what evaluation needs from a loaded model.
* :mod:`~matconv_port.eval.runner`: the evaluation loop, resumable score log.
* :mod:`~matconv_port.eval.shards`: videos shared among ``torchrun`` processes.
* :mod:`~matconv_port.eval.metrics`, :mod:`~matconv_port.eval.report`: accuracies and
  output files.
"""
