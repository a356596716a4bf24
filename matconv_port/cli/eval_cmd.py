"""``matconv-port eval``: evaluate a model on UCF101/HMDB51 splits with the paper's
protocols, or write the sampling plan only (``--plan-only``).

``--dataset`` and ``--protocol`` choices come from the registries
(:data:`~matconv_port.eval.datasets.DATASETS`, :data:`~matconv_port.eval.plan.PROTOCOLS`);
under ``torchrun`` the processes share the test videos
(:mod:`~matconv_port.eval.shards`)."""
from __future__ import annotations

import json
import os

import click

from matconv_port.cli._common import semantics_option
from matconv_port.errors import DataError
from matconv_port.eval.datasets import DATASETS
from matconv_port.eval.plan import PROTOCOLS
from matconv_port.precision import PRECISIONS


def _split_value(value: str) -> str:
    if value != "all" and not (value.isdigit() and int(value) > 0):
        raise click.BadParameter("must be a split number (1, 2, 3) or all")
    return value


class RegistryChoice(click.Choice):
    """A ``click.Choice`` over the names of a registry, read when used (an entry
    registered after import is a choice too)."""

    def __init__(self, registry: dict):
        self._registry = registry
        super().__init__(list(registry))

    @property
    def choices(self):
        return tuple(self._registry)

    @choices.setter
    def choices(self, value) -> None:
        pass


@click.command("eval")
@click.option("--split", "split", default="1", show_default=True, callback=lambda c, p, v: _split_value(v),
              help="Test split 1, 2, 3, or 'all' (the three splits and their mean).")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
              help="MatConvNet .mat model or a file written by 'matconv-port convert'.")
@click.option("--data-root", required=True, type=click.Path(file_okay=False),
              help="Dataset folder with jpegs_256/ and tvl1_flow/u|v/.")
@click.option("--dataset", type=RegistryChoice(DATASETS), default="ucf101", show_default=True)
@click.option("--splits-dir", type=click.Path(file_okay=False), default=None,
              help="Official split lists (default: DATA_ROOT/splits).")
@click.option("--protocol", type=RegistryChoice(PROTOCOLS),
              default=None, help="Default: fusion-paper for fused nets, dense25 for single streams.")
@click.option("--stream", type=click.Choice(["rgb", "flow"]), default=None,
              help="Stream of a single-stream protocol (needed with --plan-only; checked against the model).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="eval_out", show_default=True)
@click.option("--device", default="cpu", show_default=True,
              help="cpu, cuda, cuda:N or auto (under torchrun, cuda means GPU LOCAL_RANK).")
@click.option("--precision", type=click.Choice(list(PRECISIONS)), default="exact", show_default=True,
              help="exact: fp32, TF32 off (MatConvNet parity); tf32: TF32 convolutions/matmuls; bf16: autocast.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Chooses among the windows the original may pick at random (long videos).")
@click.option("--skip-missing", is_flag=True, help="Skip (and report) videos with missing/unreadable frames or too few frames.")
@click.option("--workers", type=int, default=None,
              help="DataLoader worker processes decoding JPEGs (default: the cores but one, shared among the "
                   "torchrun processes of a node, at most 16 each).")
@click.option("--batch-clips", type=int, default=None,
              help="Clips per forward pass; lower it if the GPU runs out of memory (default: a whole video on "
                   "CUDA; on CPU 2 for fused nets, 10 dense, 20/12/4 for crops10/6/2).")
@click.option("--max-videos", type=int, default=None, hidden=True)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--plan-only", "plan_only", type=click.Path(dir_okay=False), default=None,
              help="Write the sampling plan (JSON lines, one per test video) to this file and stop; no model needed.")
@semantics_option
def command(split, model_path, data_root, dataset, splits_dir, protocol, stream, out_dir, device, precision, seed,
            skip_missing, workers, batch_clips, max_videos, no_progress, plan_only, semantics) -> None:
    """Evaluate MODEL on the test videos of a split and write summary.json,
    per_class_accuracy.csv, confusion.png and scores.npz to --out (resumable).

    Under torchrun (torchrun --nproc_per_node N --no-python matconv-port eval ...)
    the processes share the videos and process 0 writes the one summary."""
    from matconv_port.eval.datasets import get_dataset
    from matconv_port.eval.plan import get_protocol, write_plan_jsonl
    from matconv_port.eval.runner import EvalOptions, evaluate, plan_split
    from matconv_port.eval.splits import read_split

    if plan_only:
        if protocol is None:
            raise DataError("--plan-only needs --protocol")
        if split == "all":
            raise DataError("--plan-only needs one --split (1, 2 or 3)")
        p = get_protocol(protocol)
        if p.kind == "single" and stream is None:
            raise DataError(f"--plan-only with protocol {protocol} needs --stream {' or '.join(p.streams)}")
        sp = read_split(dataset, splits_dir or os.path.join(data_root, "splits"), int(split))
        plans, skipped = plan_split(sp, data_root, p, stream or "fused", seed, skip_missing,
                                    frame_size=get_dataset(dataset).frame_size, max_videos=max_videos)
        n = write_plan_jsonl(plans, plan_only)
        click.echo(f"wrote {n} video plans to {plan_only}")
        for s in skipped:
            click.echo(f"skipped {s['video']}: {s['reason']}", err=True)
        return
    if model_path is None:
        raise DataError("--model is required (unless --plan-only)")
    from matconv_port.devices import resolve_device
    from matconv_port.eval import shards
    from matconv_port.precision import resolve_precision

    resolve_precision(precision)
    info = shards.join(resolve_device(device))  # a bad --device stops here, nothing written
    opts = EvalOptions(model_path=model_path, data_root=data_root, dataset=dataset, splits_dir=splits_dir,
                       protocol=protocol, stream=stream, out_dir=out_dir, device=str(info.device), seed=seed,
                       skip_missing=skip_missing, workers=workers, batch_clips=batch_clips,
                       progress=not no_progress, max_videos=max_videos, precision=precision, semantics=semantics)
    try:
        summary = evaluate(opts, split, dist_info=info)
    finally:
        shards.leave(info)
    if not info.is_main:
        return
    shown = {k: summary[k] for k in ("top1", "top5", "mean_class_accuracy", "num_videos", "num_skipped", "protocol") if k in summary}
    click.echo(json.dumps(shown))
    if summary.get("num_skipped"):
        click.echo(f"{summary['num_skipped']} videos skipped; see {os.path.join(out_dir, 'summary.json')}", err=True)
