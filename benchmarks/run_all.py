"""Rerun every benchmark in this folder and rewrite ``benchmarks/RESULTS.md``.

    python benchmarks/run_all.py [--quick] [--only NAME[,NAME]] [--output FILE]

Each benchmark script (table :data:`BENCHES`) runs in its own process, one after
the other. Inside each script the measured code and its baseline run interleaved
in the same process, and every figure is the median of at least 5 timed runs (no
best-of picks); baselines take their fastest plain form (at 224 x 224
torchvision's VGG classifier with Linear layers; convolution heads only where whole
frames give score maps). ``RESULTS.md`` gets the machine, torch version, commit and
date of this run, a summary row per benchmark (its ratio lines) and each script's
output. A benchmark that cannot run here (no CUDA, no MatConvNet build, ...) is
skipped with its reason printed and recorded.

``--quick``: quarter-width nets, small inputs and the fewest runs that still give
medians of 5 (a few minutes on 2 cores): proves the scripts run and gives rough
ratios, not the benchmark's figures. The full run
(the default) takes about an hour on 2 cores and needs ~8 GB of memory and ~3 GB
of disk under ``/tmp``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
#: where setup_refbuild.m of the original MatConvNet build lives (bench_vs_matconvnet.py)
REFBUILD = os.environ.get("MATCONV_REFBUILD", "/tmp/refbuild")


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _needs_refbuild() -> str | None:
    if shutil.which("octave-cli") is None and shutil.which("octave") is None:
        return "GNU Octave is not installed"
    if not os.path.exists(os.path.join(REFBUILD, "setup_refbuild.m")):
        return (f"no MatConvNet build at {REFBUILD} (build it with /work/shared/refbuild/build.sh, or set "
                f"MATCONV_REFBUILD)")
    return None


def _needs_opencv_optflow() -> str | None:
    try:
        import cv2
    except ImportError:
        return "OpenCV (cv2) is not installed"
    return None if hasattr(cv2, "optflow") else "OpenCV has no optflow module (opencv-contrib)"


@dataclasses.dataclass
class Bench:
    name: str
    script: str
    what: str
    full: list[str]
    #: None: not run with --quick (the reason is printed)
    quick: list[str] | None
    quick_skip: str = ""
    #: returns why it cannot run here, or None
    requires: Callable[[], str | None] = lambda: None
    #: runs only on a GPU (skipped with a reason without CUDA)
    gpu_only: bool = False
    timeout_s: int = 3600
    #: the script writes its tables to ``--report-md FILE`` (gpu_check.sh's interface): run_all passes a
    #: temporary file and adds its text to the script's output
    report_md: bool = False


BENCHES: list[Bench] = [
    Bench("fusion_forward", "bench_fusion_forward.py",
          "fused two-stream VGG-16 forward vs plain PyTorch towers + Conv3d (ratio = plain / ours, goal >= 0.95)",
          full=["--sizes", "224x224,256x340", "--batch", "1", "--iters", "5", "--warmup", "1"],
          quick=["--narrow", "--sizes", "224x224", "--batch", "1", "--iters", "5", "--warmup", "1"]),
    Bench("train_step", "bench_train_step.py",
          "fused VGG-16 training step vs a plain PyTorch step (ratio = ours / plain throughput, goal >= 0.9)",
          full=["--videos", "1", "--steps", "7", "--warmup", "1"],
          quick=["--narrow", "--videos", "1", "--steps", "5", "--warmup", "1"]),
    Bench("onnx", "bench_onnx.py",
          "onnxruntime vs PyTorch on the exported fused VGG-16 (ratio = PyTorch / onnxruntime)",
          full=["--iters", "5"],
          quick=["--narrow", "--size", "64", "--iters", "5"]),
    Bench("eval_pipeline", "bench_eval_pipeline.py",
          "eval data pipeline vs a bare cv2.imdecode loop (ratio per worker, goal >= 0.8); end-to-end projection",
          full=["--videos", "4", "--repeats", "5", "--e2e", "--e2e-passes", "5"],
          quick=["--videos", "2", "--frames", "40", "--repeats", "5"]),
    Bench("flow", "bench_flow.py",
          "flow extraction through prepare vs OpenCV's TV-L1 called directly (goal >= 0.9)",
          full=["--pairs", "4", "--repeats", "5"],
          quick=["--pairs", "2", "--repeats", "3", "--e2e-frames", "4"],
          requires=_needs_opencv_optflow),
    Bench("convert", "bench_convert.py",
          "convert wall time and peak memory vs decoding the file (goals <= 1.5x time, <= 2x weight bytes)",
          full=["--repeat", "5", "--verify"],
          quick=None, quick_skip="needs the 0.5-1.1 GB generated models (make_big_models.py); full run only"),
    Bench("vs_matconvnet", "bench_vs_matconvnet.py",
          "forward time vs the ORIGINAL MatConvNet + MexConv3D under Octave (ratio = MatConvNet / ours)",
          full=["--octave-setup", REFBUILD, "--iters", "10", "--fused-iters", "6"],
          quick=["--octave-setup", REFBUILD, "--models", "narrow", "--iters", "5", "--no-breakdown",
                 "--no-results"],
          requires=_needs_refbuild),
    Bench("flow_torch", "bench_flow_gpu.py",
          "TV-L1 in PyTorch (prepare --flow tvl1-torch) vs OpenCV's CPU TV-L1 at 256x340 (pairs/s ratio); "
          "on a GPU also the whole prepare",
          full=["--device", "cpu", "--repeats", "5", "--skip-prepare"],
          quick=["--device", "cpu", "--small"], requires=_needs_opencv_optflow),
    # the GPU benchmarks (benchmarks/gpu_check.sh runs them on the GPU machine)
    Bench("precision_cpu", "bench_gpu_forward.py",
          "what bf16 (CPU autocast) and tf32 cost in accuracy against exact, on CPU: top-1 agreement, largest "
          "score difference (fused VGG-16 at 224, demo-like fused net)",
          full=["--device", "cpu", "--accuracy-only", "--clips", "2", "--batches", "1", "--sizes", "224x224"],
          quick=["--device", "cpu", "--accuracy-only", "--small"], report_md=True),
    Bench("gpu_forward", "bench_gpu_forward.py",
          "fused VGG-16 forward on the GPU, ours / plain PyTorch in exact, tf32, bf16 (goal >= 0.95); accuracy of each mode",
          full=["--device", "cuda"], quick=["--device", "cuda", "--small"], gpu_only=True, report_md=True),
    Bench("gpu_train", "bench_gpu_train.py",
          "fused VGG-16 training step on the GPU, ours / plain (goal >= 0.95), bf16 vs exact (goal >= 2x)",
          full=["--device", "cuda"], quick=["--device", "cuda", "--small"], gpu_only=True, report_md=True),
    Bench("eval_gpu", "bench_eval_gpu.py",
          "the paper's fusion protocol end to end from full-size JPEGs on the GPU (goal >= 10 videos/s, tf32)",
          full=["--device", "cuda"], quick=["--device", "cuda", "--small"], gpu_only=True, report_md=True),
]


# ----------------------------------------------------------------------------- the run record
def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return None


def machine_record() -> dict[str, str]:
    import torch

    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    mem = _memory_gib()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "machine": f"{cpu_name()}, {os.cpu_count()} CPU cores" + (f", {mem:.1f} GiB RAM" if mem else ""),
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": f"{torch.__version__} ({torch.get_num_threads()} threads)",
        "load average (1 min) at start": f"{os.getloadavg()[0]:.1f}",
    }


@dataclasses.dataclass
class Outcome:
    bench: Bench
    status: str  # "ok" | "failed (rc N)" | "timed out" | "skipped" | "not run" (the run stopped first)
    seconds: float = 0.0
    output: str = ""
    reason: str = ""

    def headline(self) -> str:
        """The script's ratio lines (what the goals are stated in)."""
        if self.status in ("skipped", "not run"):
            return f"{self.status}: {self.reason}"
        lines = [l.strip() for l in self.output.splitlines() if "ratio" in l and l.strip()]
        return "<br>".join(_md_cell(l) for l in lines[:6]) or _md_cell(self.status)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")[:300]


def _take_report(path: str | None) -> str:
    """The text the script wrote to its ``--report-md`` file (then removed), or ""."""
    if path is None:
        return ""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return ""
    finally:
        if os.path.exists(path):
            os.remove(path)
    return "\n" + text if text.strip() else ""


def run_bench(bench: Bench, quick: bool) -> Outcome:
    if bench.gpu_only and not _has_cuda():
        return Outcome(bench, "skipped", reason="needs a CUDA GPU; none here")
    if quick and bench.quick is None:
        return Outcome(bench, "skipped", reason=f"not in --quick: {bench.quick_skip}")
    why = bench.requires()
    if why:
        return Outcome(bench, "skipped", reason=why)
    cmd = [sys.executable, os.path.join(HERE, bench.script), *(bench.quick if quick else bench.full)]
    report = None
    if bench.report_md:
        fd, report = tempfile.mkstemp(prefix=f"run_all_{bench.name}_", suffix=".md")
        os.close(fd)
        cmd += ["--report-md", report]
    print(f"== {bench.name}: {' '.join(os.path.relpath(c, REPO) if c.startswith(REPO) else c for c in cmd[1:])}",
          flush=True)
    t0 = time.perf_counter()
    try:
        # run outside the repository: its converters/ and eval/ folders must not shadow the package
        proc = subprocess.run(cmd, cwd=os.path.expanduser("~") if os.path.isdir(os.path.expanduser("~")) else "/",
                              capture_output=True, text=True, timeout=bench.timeout_s)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return Outcome(bench, "timed out", time.perf_counter() - t0, out + _take_report(report))
    seconds = time.perf_counter() - t0
    output = proc.stdout + _take_report(report) + (
        ("\n[stderr]\n" + proc.stderr[-3000:]) if proc.returncode and proc.stderr else "")
    status = "ok" if proc.returncode == 0 else f"failed (rc {proc.returncode})"
    return Outcome(bench, status, seconds, output)


def write_results(path: str, record: dict[str, str], outcomes: list[Outcome], quick: bool) -> None:
    mode = "quick (`--quick`: quarter-width nets, small inputs: rough ratios, not the benchmarks' figures)" \
        if quick else "full"
    lines = ["# Benchmark results", "",
             "Written by `python benchmarks/run_all.py` (do not edit by hand; rerun it). Every figure is the",
             "median of at least 5 timed runs, the measured code and its baseline interleaved in one process;",
             "baselines in their fastest plain form (torchvision-style VGG with a Linear classifier at 224 x 224,",
             "convolution heads only for score maps). No best-of picks.", "",
             f"Run: {mode}.", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {_md_cell(v)} |" for k, v in record.items()]
    lines += ["", "## Summary", "", "| benchmark | what | status | time | ratio lines |", "|---|---|---|---:|---|"]
    for o in outcomes:
        lines.append(f"| `{o.bench.script}` | {o.bench.what} | {o.status} | {o.seconds:.0f} s | {o.headline()} |")
    lines += ["", "## Output of each script", ""]
    for o in outcomes:
        args = o.bench.quick if quick else o.bench.full
        lines += [f"### {o.bench.name}", "", f"`python benchmarks/{o.bench.script} {' '.join(args or [])}`", ""]
        if o.status in ("skipped", "not run"):
            lines += [f"{o.status.capitalize()}: {o.reason}.", ""]
            continue
        tail = o.output.strip().splitlines()[-60:]
        lines += ["```", *tail, "```", ""]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small inputs: a few minutes on 2 cores")
    ap.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(b.name for b in BENCHES)}")
    ap.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"), help="the results file to rewrite")
    args = ap.parse_args(argv)
    only = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in only if n not in {b.name for b in BENCHES}]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(b.name for b in BENCHES)}")
    record = machine_record()
    untabled = sorted(set(f for f in os.listdir(HERE) if f.startswith("bench_") and f.endswith(".py"))
                      - {b.script for b in BENCHES})
    if untabled:  # a new script: it needs its quick and full arguments in BENCHES
        record["not run (not in run_all.py's table yet)"] = ", ".join(untabled)
        print(f"not in run_all.py's table, not run: {', '.join(untabled)}", flush=True)
    chosen = [b for b in BENCHES if not only or b.name in only]
    outcomes = []
    for i, bench in enumerate(chosen):
        o = run_bench(bench, args.quick)
        outcomes.append(o)
        # rewrite after every benchmark: a run cut short keeps what it measured, the rest marked not run
        pending = [Outcome(b, "not run", reason="the run stopped before it") for b in chosen[i + 1:]]
        write_results(args.output, record, outcomes + pending, args.quick)
        what = f"skipped: {o.reason}" if o.status == "skipped" else f"{o.status} in {o.seconds:.0f} s"
        print(f"   {bench.name}: {what}", flush=True)
        for line in o.headline().split("<br>") if o.status == "ok" else []:
            print(f"     {line}", flush=True)
    print(f"wrote {os.path.relpath(args.output)}")
    return 0 if all(o.status in ("ok", "skipped") for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
