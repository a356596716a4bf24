"""`matconv-port prepare`: frames, optical flow and split lists for new videos, or the synthetic demo data.

Real videos::

    matconv-port prepare VIDEO_DIR --out DATA_ROOT [--workers N] [--flow tvl1|farneback|dis|tvl1-torch]
                         [--device cpu|cuda|cuda:N] [--batch-pairs K]
                         [--classes-from-dirs [--split-format ucf101|hmdb51] [--test-fraction 0.3] [--split-seed 0]]

writes ``DATA_ROOT/jpegs_256/<video>/frame%06d.jpg`` (shorter side 256) and
``DATA_ROOT/tvl1_flow/{u,v}/<video>/frame%06d.jpg`` (flow clipped to +-20, 128 = no
motion). ``--flow tvl1-torch`` is the same TV-L1 in PyTorch, ``--batch-pairs`` frame pairs
of a video at once on ``--device`` (several GPUs: ``--workers N --device cuda`` puts worker
``i`` on GPU ``i mod N``, or ``torchrun --nproc_per_node N --no-python matconv-port prepare
... --device cuda``: process ``r`` takes every ``N``-th video). Finished videos are skipped on a rerun (``--force`` redoes them). Exit status:
0 when every video is ready, 2 when any video failed (after all the others were done,
with a summary naming each failure) or for bad arguments.

Demo data::

    matconv-port prepare --synthetic DIR [--num-classes 4 --videos-per-class 12 --frames 32
                         --height 64 --width 80 --seed 0]
"""
from __future__ import annotations

import sys

import click

from matconv_port.cli._common import EXIT_BAD_INPUT, fail
from matconv_port.data.flow import BATCHED_FLOW_METHODS, FLOW_METHODS
from matconv_port.data.splits import SPLIT_FORMATS
from matconv_port.data.synthetic import (
    DEFAULT_FRAMES,
    DEFAULT_HEIGHT,
    DEFAULT_NUM_CLASSES,
    DEFAULT_VIDEOS_PER_CLASS,
    DEFAULT_WIDTH,
)
from matconv_port.data.video_io import DEFAULT_SHORT_SIDE
from matconv_port.data.writers import JPEG_QUALITY


@click.command("prepare")
@click.argument("video_dir", required=False, type=click.Path(file_okay=False))
@click.option("--out", "out_root", type=click.Path(file_okay=False), help="DATA_ROOT that receives jpegs_256/, tvl1_flow/ (and splits/).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Videos processed in parallel (processes).")
@click.option("--flow", type=click.Choice(FLOW_METHODS + ("analytic",)), default=None,
              help="Flow method: tvl1 (default for videos, OpenCV contrib TV-L1), farneback, dis (faster), "
                   "tvl1-torch (the same TV-L1 in PyTorch, batched, CPU or GPU); analytic (default for --synthetic).")
@click.option("--device", default="cpu", show_default=True,
              help="--flow tvl1-torch: cpu, cuda, cuda:N or auto (with --workers N and cuda: worker i on GPU i mod GPUs).")
@click.option("--batch-pairs", type=click.IntRange(min=1), default=None,
              help="--flow tvl1-torch: frame pairs computed at once [default: from free GPU memory on CUDA, 8 on CPU]; "
                   "lower it after a GPU out-of-memory error.")
@click.option("--short-side", type=click.IntRange(min=0), default=DEFAULT_SHORT_SIDE, show_default=True,
              help="Resize frames so the shorter side is this (even sizes; 320x240 -> 340x256); 0 keeps the size.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=JPEG_QUALITY, show_default=True)
@click.option("--classes-from-dirs", is_flag=True, help="VIDEO_DIR is <class>/<video>; write the lists of splits 1-3 to DATA_ROOT/splits/.")
@click.option("--split-format", type=click.Choice(SPLIT_FORMATS), default="ucf101", show_default=True,
              help="With --classes-from-dirs: ucf101 (classInd.txt, trainlist0N.txt, testlist0N.txt) or "
                   "hmdb51 (<class>_test_splitN.txt with '<video>.avi 1|2').")
@click.option("--test-fraction", type=click.FloatRange(0.0, 1.0), default=0.3, show_default=True,
              help="With --classes-from-dirs: share of each class (of its groups, for v_<C>_gNN_cNN names) in each split's test list.")
@click.option("--split-seed", type=int, default=0, show_default=True, help="Seed of the deterministic train/test choice.")
@click.option("--force", is_flag=True, help="Redo videos that are already finished.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--synthetic", "synthetic_dir", type=click.Path(file_okay=False), default=None,
              help="Write the synthetic moving-shapes demo dataset to this folder instead.")
@click.option("--num-classes", type=int, default=DEFAULT_NUM_CLASSES, show_default=True, help="--synthetic: classes (motion directions).")
@click.option("--videos-per-class", type=int, default=DEFAULT_VIDEOS_PER_CLASS, show_default=True, help="--synthetic: videos per class.")
@click.option("--frames", type=int, default=DEFAULT_FRAMES, show_default=True, help="--synthetic: frames per video.")
@click.option("--height", type=int, default=DEFAULT_HEIGHT, show_default=True, help="--synthetic: frame height (256 for the real size).")
@click.option("--width", type=int, default=DEFAULT_WIDTH, show_default=True, help="--synthetic: frame width (340 for the real size).")
@click.option("--seed", type=int, default=0, show_default=True, help="--synthetic: random seed.")
def command(video_dir, out_root, workers, flow, device, batch_pairs, short_side, jpeg_quality, classes_from_dirs,
            split_format, test_fraction, split_seed, force, no_progress, synthetic_dir, num_classes, videos_per_class, frames, height, width, seed) -> None:
    """Decode videos into frames + TV-L1 flow JPEGs (the original data layout), or make demo data.

    \b
    matconv-port prepare VIDEO_DIR --out DATA_ROOT [--workers N] [--flow tvl1|farneback|dis|tvl1-torch]
                         [--device cpu|cuda|cuda:N] [--batch-pairs K] [--classes-from-dirs [--split-format ucf101|hmdb51]]
    matconv-port prepare --synthetic DIR [--num-classes K --videos-per-class V --frames F --height H --width W --seed S]

    Exit status 2 when any video failed (the others are still prepared; the summary lists failures).
    """
    if synthetic_dir is not None:
        if video_dir is not None or out_root is not None:
            fail("--synthetic DIR takes no VIDEO_DIR or --out")
        _synthetic(synthetic_dir, num_classes, videos_per_class, frames, height, width, seed, flow or "analytic")
        return
    if video_dir is None or out_root is None:
        fail("give VIDEO_DIR and --out DATA_ROOT (or --synthetic DIR); see matconv-port prepare --help")
    if flow == "analytic":
        fail("--flow analytic is only for --synthetic; choose tvl1, farneback, dis or tvl1-torch")
    if (flow or "tvl1") not in BATCHED_FLOW_METHODS and (batch_pairs is not None or device != "cpu"):
        fail(f"--device and --batch-pairs are for --flow {'/'.join(BATCHED_FLOW_METHODS)} (not {flow or 'tvl1'})")
    from matconv_port.data.prepare import prepare_videos

    summary = prepare_videos(
        video_dir, out_root, flow=flow or "tvl1", workers=workers, short_side=short_side or None,
        jpeg_quality=jpeg_quality, classes_from_dirs=classes_from_dirs, test_fraction=test_fraction,
        split_seed=split_seed, force=force, progress=not no_progress, device=device, batch_pairs=batch_pairs,
        split_format=split_format,
    )
    for line in summary.lines():
        click.echo(line, err=line.startswith("failed:"))
    if summary.failed:
        sys.exit(EXIT_BAD_INPUT)


def _synthetic(root, num_classes, videos_per_class, frames, height, width, seed, flow) -> None:
    from matconv_port.data.synthetic import make_synthetic_dataset

    info = make_synthetic_dataset(root, num_classes=num_classes, videos_per_class=videos_per_class, frames=frames,
                                  height=height, width=width, seed=seed, flow=flow)
    s1 = info["splits"][1]
    click.echo(
        f"synthetic dataset in {info['root']}: {len(info['classes'])} classes ({', '.join(info['classes'])}), "
        f"{len(info['videos'])} videos of {frames} frames {height}x{width}; split 1: {len(s1['train'])} train, "
        f"{len(s1['test'])} test; splits in {info['split_dir']}"
    )
