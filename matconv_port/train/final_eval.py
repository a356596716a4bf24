"""The paper's evaluation protocol on the test split at the end of training
(``matconv_port.eval``: fusion-paper for fused nets, dense25 for single streams),
reports written to ``EXPDIR/eval_split<N>/``."""
from __future__ import annotations

import os
from collections.abc import Callable


def paper_eval(model_path: str, opts, log: Callable[[str], None] = print) -> dict | None:
    """Evaluate ``model_path`` on ``opts.split`` with the default protocol; returns the summary."""
    from matconv_port.eval.runner import EvalOptions, evaluate_split

    from matconv_port.devices import resolve_device

    # the training run's device (cuda:N stays cuda:N) and numerics policy
    device = str(resolve_device(opts.device, local_rank=0, local_world_size=1))
    eopts = EvalOptions(model_path=model_path, data_root=opts.data_root, dataset=opts.dataset,
                        splits_dir=opts.splits_dir, out_dir=os.path.join(opts.out, f"eval_split{opts.split}"),
                        device=device, seed=opts.seed, workers=min(2, max(0, opts.threads)), progress=opts.progress,
                        precision=opts.precision or "exact")
    summary = evaluate_split(eopts, opts.split, log=log)
    log(f"paper protocol ({summary['protocol']}), split {opts.split}: top-1 {summary['top1']:.4f} "
        f"top-5 {summary['top5']:.4f} mean class accuracy {summary['mean_class_accuracy']:.4f} "
        f"({summary['num_videos']} videos) -> {eopts.out_dir}")
    return summary
