"""The paper's evaluation protocol end to end from disk, at GPU speed: videos/s, the
decode-only ceiling, the GPU's busy fraction, and where the time goes.

What runs (issue 14's goal: >= 10 videos/s on one H200 in ``tf32``, so that UCF101
split 1, 3,783 test videos, takes under 6.5 minutes):

* data: ``matconv-port prepare --synthetic --height 256 --width 340`` (full-size
  256 x 340 JPEG frames and flow; ``--frames`` per video, UCF101's mean is ~186) into a
  temporary folder; its videos are listed ``--videos`` times over in
  ``splits/testlist01.txt`` through symbolic links (``v_<Class>_g<NN>_c01`` ->
  a prepared video), so a long test list costs no preparation. Every JPEG is still
  read and decoded per video (from the page cache, as on a machine whose RAM holds
  the dataset);
* model: the paper's fused two-stream VGG-16 (``relu5_3`` Conv3D fusion, 3-D pooling,
  101 classes; :func:`~matconv_port.fusion.build_fused_netspec` over two
  :func:`~matconv_port.train.archs.vgg16` in the paper's layout), random weights, run in
  ``--precision`` (default ``tf32``); ``--small``: the same graph with narrow layers;
* protocol ``fusion-paper``: 20 clips x 5 frames x (3 + 20) channels of whole
  256 x 340 frames per video, decoded by ``--workers`` DataLoader processes
  (default: the cores but one), one video per forward pass on CUDA.

Measured in one run:

1. decode-only ceiling: the same DataLoader (workers, shared-memory slots, pinning on
   CUDA) with no network: videos/s the machine can decode and assemble;
2. end to end: :func:`matconv_port.eval.runner.evaluate_split` as ``matconv-port
   eval`` runs it: videos/s over the whole run (worker start-up included) and in the
   steady state (first forward's end to last forward's end); GPU busy fraction =
   time inside the model's forward (CUDA events) / steady wall time;
3. where the time goes, per video, each the median of 5: JPEG decode and clip
   assembly (one worker), host-to-device copy of the uint8 batch (pinned), mirrors +
   mean subtraction on the device, forward, and the scores' copy back.

    python3 benchmarks/bench_eval_gpu.py --device cuda [--small] --report-md OUT.md
        [--videos 160] [--workers N] [--precision tf32] [--frames 180]

``--small`` is the dry run (``--device cpu``: well under a minute on 2 cores): 4 videos
of 32 x 40 frames (fed whole to a net of input size 24) and a narrow net of the same
graph; one video per forward pass on CPU too.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from torch.utils.data import DataLoader

from matconv_port.devices import resolve_device
from matconv_port.errors import MatConvPortError
from matconv_port.eval.batches import VideoChunkDataset, collate_single, make_chunks
from matconv_port.eval.model_io import describe_model
from matconv_port.eval.plan import get_protocol
from matconv_port.eval.runner import PREFETCH, EvalOptions, default_workers, evaluate_split, plan_split
from matconv_port.eval.splits import read_split

UCF101_SPLIT1_TEST = 3783
GOAL_VIDEOS_PER_S = 10.0
NUM_CLASSES = 101
SMALL_FRAME = (32, 40)  # --small: tiny frames, fed whole (dense mode keeps sizes within [S, 2S])
SMALL_INPUT = 24


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__)), timeout=10).stdout.strip() or "?"
    except Exception:
        return "?"


def prepare_data(root: str, frames: int, videos: int, classes: int = 2, size: tuple[int, int] = (256, 340)) -> float:
    """``prepare --synthetic`` (``classes`` x 2 videos) then a test list of ``videos``
    entries linked to them; returns the preparation seconds."""
    from matconv_port.cli import main as cli

    t = time.perf_counter()
    try:
        cli(["prepare", "--synthetic", root, "--height", str(size[0]), "--width", str(size[1]), "--frames", str(frames),
             "--num-classes", str(classes), "--videos-per-class", "2", "--no-progress"], standalone_mode=False)
    except SystemExit as exc:  # pragma: no cover - prepare failed: its one line is printed
        raise SystemExit(f"prepare --synthetic failed ({exc.code})")
    split = read_split("ucf101", os.path.join(root, "splits"), 1)
    real = list(split.train) + list(split.test)
    lines = []
    for i in range(videos):
        src = real[i % len(real)]
        alias = f"v_{src.class_name}_g{90 + i // len(real):03d}_c{1 + i % len(real):02d}"
        for sub in ("jpegs_256", os.path.join("tvl1_flow", "u"), os.path.join("tvl1_flow", "v")):
            link = os.path.join(root, sub, alias)
            if not os.path.exists(link):
                os.symlink(os.path.join(root, sub, src.name), link)
        lines.append(f"{src.class_name}/{alias}.avi\n")
    with open(os.path.join(root, "splits", "testlist01.txt"), "w") as f:
        f.writelines(lines)
    names = list(split.classes) + [f"Unused{k:03d}" for k in range(len(split.classes) + 1, NUM_CLASSES + 1)]
    with open(os.path.join(root, "splits", "classInd.txt"), "w") as f:  # 101 classes, as UCF101 and the net
        f.writelines(f"{k} {c}\n" for k, c in enumerate(names, 1))
    return time.perf_counter() - t


def build_model(small: bool, device: torch.device, precision: str):
    from matconv_port.fusion import FusionOptions, build_fused_netspec
    from matconv_port.network import MatConvNetModel
    from matconv_port.train.archs import vgg16

    kw = dict(widths=(8, 8, 16, 16, 16), fc_width=32, fc6_size=1, image_size=(SMALL_INPUT, SMALL_INPUT)) if small else {}
    towers = [vgg16(NUM_CLASSES, stream, seed=seed, init="he32", layout="paper", **kw)
              for stream, seed in (("rgb", 1), ("flow", 2))]
    spec = build_fused_netspec(towers[0], towers[1], FusionOptions(frames=5))
    return MatConvNetModel(spec, precision=precision).to(device).eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn, device: torch.device, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def decode_ceiling(root: str, plans, norm, workers: int, device: torch.device) -> dict:
    """Videos/s of the eval DataLoader alone (decode, assemble, ship; pinned on CUDA)."""
    chunks = [c for i, p in enumerate(plans) for c in make_chunks(i, p, len(p.clips))]
    ds = VideoChunkDataset(root, plans, chunks, norm)
    ds.use_slot_pool(workers, slots_per_worker=PREFETCH + 2)
    loader = DataLoader(ds, batch_size=1, num_workers=workers, collate_fn=collate_single,
                        pin_memory=device.type == "cuda", prefetch_factor=PREFETCH if workers else None)
    t0 = time.perf_counter()
    first = None
    n = 0
    for res in loader:
        if res.error:
            raise SystemExit(res.error)
        res.release()
        n += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return {"videos": n, "videos_per_s": n / (end - t0),
            "steady_videos_per_s": (n - 1) / (end - first) if n > 1 and end > first else float("nan")}


class _TimedForward:
    """Wraps ``model.forward_vars``: CUDA events (or host clocks on CPU) around each call."""

    def __init__(self, model, device: torch.device):
        self.model, self.device = model, device
        self.orig = model.forward_vars
        self.marks: list = []
        model.forward_vars = self

    def __call__(self, *a, **k):
        if self.device.type == "cuda":
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            out = self.orig(*a, **k)
            e.record()
        else:
            s = time.perf_counter()
            out = self.orig(*a, **k)
            e = time.perf_counter()
        self.marks.append((s, e))
        return out

    def restore(self) -> None:
        del self.model.forward_vars

    def busy(self) -> dict:
        """Seconds inside forward, and the span from the first forward's end to the last's."""
        if not self.marks:
            return {"forward_s": 0.0, "span_s": 0.0, "calls": 0}
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            inside = sum(s.elapsed_time(e) for s, e in self.marks) / 1e3
            span = self.marks[0][0].elapsed_time(self.marks[-1][1]) / 1e3
            steady = self.marks[0][1].elapsed_time(self.marks[-1][1]) / 1e3
        else:
            inside = sum(e - s for s, e in self.marks)
            span = self.marks[-1][1] - self.marks[0][0]
            steady = self.marks[-1][1] - self.marks[0][1]
        return {"forward_s": inside, "span_s": span, "steady_s": steady, "calls": len(self.marks)}


def stages(root: str, plans, model, streams, device: torch.device) -> dict:
    """Per-video milliseconds of each stage (median of 5), on one video."""
    plan = plans[0]
    chunk = make_chunks(0, plan, len(plan.clips))[0]
    ds = VideoChunkDataset(root, plans, [chunk], streams.norm, cache_size=0)
    out: dict[str, float] = {}
    out["decode + assemble (1 worker)"] = _median_ms(lambda: ds[0], torch.device("cpu"))
    res = ds[0]
    nbytes = sum(t.numel() * t.element_size() for t in (res.rgb, res.flow) if t is not None)
    if device.type == "cuda":
        pinned = [t.pin_memory() for t in (res.rgb, res.flow)]
        out["host -> device (pinned, uint8)"] = _median_ms(lambda: [t.to(device, non_blocking=True) for t in pinned], device)
        res.rgb, res.flow = [t.to(device) for t in pinned]
    else:
        out["host -> device (pinned, uint8)"] = 0.0
    out["mirrors + mean subtraction (device)"] = _median_ms(lambda: res.normalized(streams.norm, device), device)
    rgb, flow = res.normalized(streams.norm, device)
    inputs = {streams.rgb_var: rgb.reshape(-1, *rgb.shape[2:]), streams.flow_var: flow.reshape(-1, *flow.shape[2:])}

    def fwd():
        with torch.inference_mode():
            return model.forward_vars(inputs, num_videos=len(plan.clips), outputs=list(streams.score_vars))

    fwd()  # warm-up (cuDNN algorithm choice)
    out["forward (fused VGG-16)"] = _median_ms(fwd, device)
    res.release()
    return {"ms": out, "batch_bytes": nbytes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="narrow net, few videos: a dry run")
    ap.add_argument("--report-md", default=None, help="write the results as Markdown here")
    ap.add_argument("--videos", type=int, default=None, help="test videos (default 160; --small 4)")
    ap.add_argument("--frames", type=int, default=None, help="frames per prepared video (default 180; --small 90)")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: cores but one, <= 16)")
    ap.add_argument("--precision", default="tf32", choices=["exact", "tf32", "bf16"])
    ap.add_argument("--keep", default=None, help="prepare into this folder and keep it")
    args = ap.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except MatConvPortError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    videos = args.videos or (4 if args.small else 160)
    frames = args.frames or (60 if args.small else 180)
    workers = default_workers(1) if args.workers is None else args.workers
    work = args.keep or tempfile.mkdtemp(prefix="bench_eval_gpu_")
    root = os.path.join(work, "data")
    t_all = time.perf_counter()
    try:
        size = SMALL_FRAME if args.small else (256, 340)
        prep_s = prepare_data(root, frames, videos, size=size)
        print(f"prepared {videos} test videos of {frames} frames in {prep_s:.1f} s", flush=True)
        t = time.perf_counter()
        model = build_model(args.small, device, args.precision)
        build_s = time.perf_counter() - t
        streams = describe_model(model)
        protocol = get_protocol("fusion-paper")
        split = read_split("ucf101", os.path.join(root, "splits"), 1)
        plans, _ = plan_split(split, root, protocol, "fused", 0, False)
        ceiling = decode_ceiling(root, plans, streams.norm, workers, device)
        print(f"decode-only ceiling: {ceiling['videos_per_s']:.2f} videos/s ({workers} workers)", flush=True)
        timed = _TimedForward(model, device)
        opts = EvalOptions(model_path=f"random fused VGG-16{' (small)' if args.small else ''}", data_root=root,
                           out_dir=os.path.join(work, "eval_out"), device=str(device), workers=workers,
                           progress=False, precision=args.precision,
                           batch_clips=None if device.type == "cuda" else protocol.samples * 2 // protocol.clip_len)
        t = time.perf_counter()
        summary = evaluate_split(opts, 1, model=model, streams=streams)
        e2e_wall = time.perf_counter() - t
        busy = timed.busy()
        timed.restore()
        n = summary["num_videos"]
        e2e = {"videos": n, "wall_s": e2e_wall, "videos_per_s": n / e2e_wall,
               "steady_videos_per_s": n * (busy["calls"] - 1) / busy["calls"] / busy["steady_s"]
               if busy["calls"] > 1 and busy["steady_s"] > 0 else float("nan"),
               "busy": busy["forward_s"] / busy["span_s"] if busy["span_s"] > 0 else float("nan"), "calls": busy["calls"]}
        print(f"end to end: {e2e['videos_per_s']:.2f} videos/s (steady {e2e['steady_videos_per_s']:.2f}), "
              f"GPU busy {e2e['busy']:.2f}", flush=True)
        st = stages(root, plans, model, streams, device)
        for k, v in st["ms"].items():
            print(f"  {k}: {v:.1f} ms/video", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    total_s = time.perf_counter() - t_all
    if args.report_md:
        write_report(args, device, workers, videos, frames, prep_s, build_s, ceiling, e2e, st, total_s)
    return 0


def write_report(args, device, workers, videos, frames, prep_s, build_s, ceiling, e2e, st, total_s) -> None:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none (CPU)"
    goal = "" if args.small else (f" (goal >= {GOAL_VIDEOS_PER_S:g}: "
                                  f"{'met' if e2e['steady_videos_per_s'] >= GOAL_VIDEOS_PER_S else 'NOT met'})")
    split1 = UCF101_SPLIT1_TEST / e2e["steady_videos_per_s"] / 60 if e2e["steady_videos_per_s"] > 0 else float("nan")
    lines = [
        f"## Evaluation end to end from disk ({'small dry run' if args.small else 'fused VGG-16, fusion-paper'})",
        "",
        f"`benchmarks/bench_eval_gpu.py --device {args.device}{' --small' if args.small else ''}` on {platform.node()}: "
        f"{gpu}, {os.cpu_count()} CPU cores, torch {torch.__version__} (CUDA {torch.version.cuda}), "
        f"commit {_commit()}, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. "
        f"Precision {args.precision}; {workers} decode workers; {videos} test videos of {frames} frames "
        f"({' x '.join(map(str, SMALL_FRAME if args.small else (256, 340)))}, `prepare --synthetic`), "
        f"20 clips x 5 frames x 23 channels each; one video per forward pass "
        f"on CUDA. Preparation {prep_s:.1f} s, model build {build_s:.1f} s, whole benchmark {total_s:.0f} s.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| end to end, steady state (first to last forward) | {e2e['steady_videos_per_s']:.2f} videos/s{goal} |",
        f"| end to end, whole run (worker start-up included) | {e2e['videos_per_s']:.2f} videos/s ({e2e['videos']} videos, {e2e['wall_s']:.1f} s) |",
        f"| decode-only ceiling ({workers} workers, no network) | {ceiling['steady_videos_per_s']:.2f} videos/s steady, "
        f"{ceiling['videos_per_s']:.2f} whole run |",
        f"| GPU busy fraction (time inside forward / steady wall) | {e2e['busy']:.2f} |",
        f"| UCF101 split 1 ({UCF101_SPLIT1_TEST} videos) at the steady rate | {split1:.1f} min |",
        "",
        "Where the time goes, per video (median of 5, one video at a time, synchronised):",
        "",
        "| stage | where | ms per video | capacity |",
        "|---|---|---|---|",
    ]
    where = {"decode + assemble (1 worker)": f"a worker (x{workers})", "host -> device (pinned, uint8)": "copy engine",
             "mirrors + mean subtraction (device)": str(device), "forward (fused VGG-16)": str(device)}
    for k, v in st["ms"].items():
        per = workers if k.startswith("decode") else 1
        cap = f"{1000.0 * per / v:.1f} videos/s" if v > 0 else "-"
        lines.append(f"| {k} | {where[k]} | {v:.1f} | {cap} |")
    lines += ["", f"One video's uint8 batch is {st['batch_bytes'] / 2**20:.0f} MiB (the 10 distinct unflipped "
              "views; mirrors are made on the device).", ""]
    os.makedirs(os.path.dirname(os.path.abspath(args.report_md)), exist_ok=True)
    with open(args.report_md, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {args.report_md}")


if __name__ == "__main__":
    sys.exit(main())
