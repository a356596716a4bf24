"""Forward throughput of matconv-port against the ORIGINAL MatConvNet under GNU Octave,
same CPU, same thread count, same weights, same input, runs interleaved.

For each model (``--models``, default ``narrow,vgg16,fused``):

* ``narrow``: ``fixtures/reference/fusion_twostream_vgg16narrow_a.mat`` (the paper's
  fused two-stream DagNN with narrow VGG-16 towers, as the original fusion code built
  it) on its own inputs (40 x 40, 5 frames x 2 videos): a quick run that mostly
  measures per-layer overhead;
* ``vgg16``: a full-size VGG-16 SimpleNN with random weights (101 classes), one
  224 x 224 image;
* ``fused``: the paper's fused two-stream VGG-16 DagNN at full widths with random
  weights (``make_big_models.fused_dagnn``: Conv3D fusion 3x3x3x1024x512 at relu5_3,
  3D max pooling in both towers, two heads), 5 frames x 1 video, 224 x 224;

the model is written (random weights, seeded) into the work folder as an
UNCOMPRESSED MAT v5 file (MatConvNet loads it without inflating; the narrow fixture is
used as it is), then

* an ``octave-cli`` child loads it with the original MatConvNet fork + MexConv3D
  (``setup_refbuild()`` of ``--octave-setup``) through ``benchmarks/matconvnet_forward.m``
  and waits for commands on stdin: SimpleNN ``vl_simplenn(net, x, [], [], 'mode',
  'test')``; DagNN ``dagnn.DagNN.loadobj``, mode ``test``, ``meta.curBatchSize`` =
  videos, ``meta.curNumFrames = repmat(frames, 1, numel(net.layers))``, the loss/error
  layers (which need ``label``) removed, ``net.eval``; each pass timed inside Octave
  with tic/toc (Octave start-up and model loading are not timed);
* this process loads the same file with ``matconv_port.load_model(path,
  lrn_mode="fast")`` and times ``model(*inputs)`` under ``torch.no_grad()``;
* one warm-up pass each, then both outputs of the prediction vars are compared (max
  abs difference / max |MatConvNet value|) so that the same work is timed, then
  ``--iters`` timed passes each, alternating which side goes first.

Both sides get the same thread count (``--threads``, default 2; ``--threads 2,1`` runs
each model at both): ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` for both processes and
``torch.set_num_threads``. OpenBLAS keeps the kernel it detects for the CPU (its
fastest); ``--openblas-coretype Haswell`` reproduces the shared fixtures bitwise.

ratio = MatConvNet median time / matconv-port median time (> 1: the port is faster),
for wall time and for process CPU time (all threads).

    python benchmarks/bench_vs_matconvnet.py [--octave-setup /tmp/refbuild] [--iters N]
        [--fused-iters N] [--models narrow,vgg16,fused] [--threads 2[,1]] [--work DIR]
        [--keep] [--results benchmarks/RESULTS_matconvnet.md | --no-results]

Big files go to ``--work`` (default ``/tmp/matconv_bench_vs_mcn``), removed at the end
unless ``--keep``.
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
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
NARROW = os.path.join(REPO, "fixtures", "reference", "fusion_twostream_vgg16narrow_a.mat")
DEFAULT_WORK = "/tmp/matconv_bench_vs_mcn"
DEFAULT_RESULTS = os.path.join(HERE, "RESULTS_matconvnet.md")
MODELS = ("narrow", "vgg16", "fused")


# ----------------------------------------------------------------------------- models


@dataclass
class Case:
    """One model to time: its file, inputs (MatConvNet layout H x W x C x N) and clip."""

    key: str
    description: str
    path: str
    inputs: dict[str, np.ndarray]
    videos: int
    frames: int
    generated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _save_uncompressed(path: str, variables: dict[str, Any]) -> None:
    """Neutral values (see ``matconv_port.converters.matfile``) -> uncompressed MAT v5,
    atomically. Uncompressed because MatConvNet/Octave then loads a GB-sized net without
    inflating it; ``write_mat`` only writes compressed -v7 or -v7.3 (HDF5, which Octave
    cannot read as MATLAB structs)."""
    import scipy.io

    from matconv_port.atomic import atomic_path
    from matconv_port.converters._mat5_write import to_scipy

    converted = {k: to_scipy(v) for k, v in variables.items()}
    with atomic_path(path, ".mat") as tmp:
        with open(tmp, "wb") as fh:
            scipy.io.savemat(fh, converted, do_compression=False, long_field_names=True, oned_as="row")


def _random_image(rng: np.random.Generator, h: int, w: int, c: int, n: int, scale: float) -> np.ndarray:
    """Mean-subtracted-like input, H x W x C x N single."""
    return np.asfortranarray(rng.standard_normal((h, w, c, n), dtype=np.float32) * np.float32(scale))


def make_case(key: str, work: str, seed: int) -> Case:
    """Build (or take) the model ``key`` and its inputs."""
    sys.path.insert(0, HERE)
    import make_big_models as mbm  # benchmarks/make_big_models.py

    rng = np.random.default_rng(seed)
    if key == "narrow":
        import scipy.io

        d = scipy.io.loadmat(NARROW, variable_names=["input", "input_flow", "curBatchSize", "nFrames"])
        videos = int(np.ravel(d["curBatchSize"])[0])
        frames = int(np.ravel(d["nFrames"])[0]) if "nFrames" in d else d["input"].shape[3] // videos
        return Case(key, "fused two-stream DagNN, narrow VGG-16 towers (shared reference fixture), "
                    f"40 x 40, {frames} frames x {videos} videos", NARROW,
                    {"input": np.asarray(d["input"], np.float32),
                     "input_flow": np.asarray(d["input_flow"], np.float32)},
                    videos, frames)
    if key == "vgg16":
        path = os.path.join(work, "vgg16_simplenn_v5.mat")
        net = mbm.vgg16_simplenn(rng)
        _save_uncompressed(path, {"net": net})
        del net
        return Case(key, "VGG-16 SimpleNN (full size, random weights, 101 classes), 1 image 224 x 224",
                    path, {"x0": _random_image(rng, 224, 224, 3, 1, 50.0)}, 1, 1, generated=True)
    if key == "fused":
        path = os.path.join(work, "fused_twostream_vgg16_v5.mat")
        net = mbm.fused_dagnn()
        for p in net["params"]:  # zero placeholders -> seeded random values, layer by layer
            p["value"] = mbm.random_array(tuple(p["value"].shape), rng)
        _save_uncompressed(path, {"net": net})
        del net
        frames = 5
        return Case(key, "fused two-stream VGG-16 DagNN (paper's final net: Conv3D fusion at relu5_3, "
                    f"3D pooling, two heads; full size, random weights), 224 x 224, {frames} frames x 1 video",
                    path, {"input": _random_image(rng, 224, 224, 3, frames, 50.0),
                           "input_flow": _random_image(rng, 224, 224, 20, frames, 20.0)},
                    1, frames, generated=True)
    raise ValueError(f"unknown model {key!r}")


# ----------------------------------------------------------------------------- Octave child


class OctaveForward:
    """An ``octave-cli`` child running ``matconvnet_forward.m`` on one model."""

    def __init__(self, setup_dir: str, net_file: str, input_file: str, keep: list[str],
                 env: dict[str, str], log_path: str, timeout: float):
        cmd = (f"addpath('{setup_dir}'); setup_refbuild(); addpath('{HERE}'); "
               f"matconvnet_forward('{net_file}', '{input_file}', '{','.join(keep)}')")
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(["octave-cli", "--no-window-system", "--eval", cmd], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1, env=env,
                                     cwd=os.path.dirname(input_file))
        self.timeout = timeout
        self.info: dict[str, str] = {}
        while True:
            line = self._line()
            if line.startswith("READY"):
                self.load_s = float(line.split()[1])
                break
            head, _, rest = line.partition(" ")
            self.info[head] = rest

    def _line(self) -> str:
        """Next stdout line (with a watchdog); raises with Octave's stderr on failure."""
        timer = threading.Timer(self.timeout, self.proc.kill)
        timer.start()
        try:
            line = self.proc.stdout.readline()
        finally:
            timer.cancel()
        if not line:
            self.proc.wait()
            self.log.flush()
            with open(self.log.name) as fh:
                err = [l.rstrip() for l in fh if l.startswith("error")]
            why = " | ".join(err[-3:]) or "no output"
            raise RuntimeError(f"octave-cli stopped (status {self.proc.returncode}): {why}")
        return line.strip()

    def _send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def run(self, k: int = 1) -> list[tuple[float, float]]:
        """k timed passes -> [(wall s, CPU s)]."""
        self._send(f"run {k}")
        walls = [float(v) for v in self._expect("TIMES").split()]
        cpus = [float(v) for v in self._expect("CPU").split()]
        return list(zip(walls, cpus))

    def layer_times(self) -> dict[str, float]:
        """Per-layer seconds of the last pass (MatConvNet's own records)."""
        self._send("layers")
        out = {}
        while True:
            line = self._line()
            if line == "END":
                return out
            _, name, sec = line.split()
            out[name] = float(sec)

    def save(self, path: str) -> None:
        self._send(f"save {path}")
        self._expect("SAVED")

    def _expect(self, head: str) -> str:
        line = self._line()
        if not line.startswith(head):
            raise RuntimeError(f"octave-cli: expected {head}, got {line!r}")
        return line[len(head):].strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send("quit")
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ----------------------------------------------------------------------------- one model


def bench_case(case: Case, args, env: dict[str, str], work: str) -> dict[str, Any]:
    import scipy.io
    import torch

    from matconv_port import from_matconvnet_layout, load_model

    iters = {"fused": args.fused_iters, "narrow": 4 * args.iters}.get(case.key, args.iters)
    load_before = os.getloadavg()
    input_file = os.path.join(work, f"{case.key}_inputs.mat")
    scipy.io.savemat(input_file, dict(case.inputs, curBatchSize=float(case.videos), nFrames=float(case.frames)))

    t0 = time.perf_counter()
    model = load_model(case.path, lrn_mode="fast")
    model.eval()
    ours_load = time.perf_counter() - t0
    keep = list(model.prediction_vars)
    tensors = [from_matconvnet_layout(case.inputs[name]) for name in model.input_vars]
    kwargs = {"num_videos": case.videos} if model.frames_per_clip else {}

    octave = OctaveForward(args.octave_setup, case.path, input_file, keep, env,
                           os.path.join(work, f"{case.key}_octave.log"), timeout=args.octave_timeout)
    try:
        def ours() -> tuple[float, float, Any]:
            t, c = time.perf_counter(), time.process_time()
            out = model(*tensors, **kwargs)
            return time.perf_counter() - t, time.process_time() - c, out

        with torch.no_grad():
            octave.run(1)  # warm-up
            _, _, out = ours()
            out = out if isinstance(out, tuple) else (out,)
            out_file = os.path.join(work, f"{case.key}_octave_out.mat")
            octave.save(out_file)
            ref = scipy.io.loadmat(out_file)["outputs"]
            diffs = {}
            for name, got in zip(keep, out):
                want = from_matconvnet_layout(np.asarray(ref[name][0, 0], np.float32))
                if tuple(want.shape) != tuple(got.shape):
                    raise RuntimeError(f"{case.key}: var {name} is {tuple(want.shape)} in MatConvNet, "
                                       f"{tuple(got.shape)} here")
                scale = float(want.abs().max()) or 1.0
                diffs[name] = float((got - want).abs().max()) / scale
            del out
            times: dict[str, list[tuple[float, float]]] = {"matconvnet": [], "ours": []}
            for i in range(iters):
                order = ("matconvnet", "ours") if i % 2 == 0 else ("ours", "matconvnet")
                for side in order:
                    time.sleep(args.pause)
                    if side == "matconvnet":
                        times[side] += octave.run(1)
                    else:
                        w, c, out = ours()
                        del out
                        times[side].append((w, c))
            breakdown = _breakdown(model, octave, ours) if args.breakdown and case.key != "narrow" else None
    finally:
        octave.close()
    med = {k: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) for k, v in times.items()}
    result = {
        "key": case.key, "description": case.description, "iters": iters, "videos": case.videos,
        "frames": case.frames, "pred_vars": keep, "max_rel_diff": diffs,
        "wall": {k: m[0] for k, m in med.items()}, "cpu": {k: m[1] for k, m in med.items()},
        "all_wall": {k: [t[0] for t in v] for k, v in times.items()},
        "ratio_wall": med["matconvnet"][0] / med["ours"][0], "ratio_cpu": med["matconvnet"][1] / med["ours"][1],
        "load_s": {"matconvnet": octave.load_s, "ours": ours_load},
        "loadavg": (load_before, os.getloadavg()), "octave_info": octave.info, "breakdown": breakdown,
    }
    del model
    return result


def _breakdown(model, octave: OctaveForward, ours) -> dict[str, Any]:
    """One more pass each, timed per layer: MatConvNet's own per-layer records, and
    perf_counter around each of our layer modules (forward pre/post hooks).
    Returns ``rows``: (layer name, layer type, MatConvNet s, ours s) in execution order,
    and ``total``: (MatConvNet s, ours s) of that whole pass."""
    mine: dict[str, float] = {}
    started: dict[str, float] = {}
    hooks = []
    for module, spec in zip(model.layers, model.layer_specs):
        def pre(_m, _a, name=spec.name):
            started[name] = time.perf_counter()

        def post(_m, _a, _o, name=spec.name):
            mine[name] = time.perf_counter() - started[name]

        hooks += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        total_theirs = octave.run(1)[0][0]
        theirs = octave.layer_times()
        total_ours = ours()[0]
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for li in model.execution_order:
        spec = model.layer_specs[li]
        if spec.name in mine or spec.name in theirs:
            rows.append((spec.name, spec.type, theirs.get(spec.name, float("nan")), mine.get(spec.name, float("nan"))))
    return {"rows": rows, "total": (total_theirs, total_ours)}


# ----------------------------------------------------------------------------- report


def _cpu_model() -> str:
    """lscpu's model name and topology (sockets x cores x threads per core)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}
    return (f"{fields.get('Model name', 'unknown CPU')}, {fields.get('CPU(s)', '?')} CPUs "
            f"({fields.get('Socket(s)', '?')} socket x {fields.get('Core(s) per socket', '?')} cores x "
            f"{fields.get('Thread(s) per core', '?')} thread per core)")


def _fmt_s(s: float) -> str:
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def report(results: list[dict], args, started: str, elapsed: float) -> str:
    import torch

    info = results[0]["octave_info"] if results else {}
    lines = [
        "# Forward throughput: matconv-port vs the original MatConvNet under Octave",
        "",
        "Made by `" + " ".join(["python benchmarks/bench_vs_matconvnet.py"] + sys.argv[1:])
        + "` (driving `benchmarks/matconvnet_forward.m`).",
        "",
        f"- Date: {started} (whole run {elapsed:.0f} s)",
        f"- Machine (lscpu): {_cpu_model()}; no GPU (CPU code on both sides)",
        "- Threads: the same count on both sides (column `threads`): OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = "
        "MKL_NUM_THREADS = that count for the Octave child, torch.set_num_threads(that count) here (this "
        f"process started with those variables at {max(args.threads)}); torch reported "
        + ", ".join(sorted({f"{r['threads'][1]} intra-op threads for {r['threads'][0]}" for r in results})),
        f"- matconv-port: torch {torch.__version__}, Python {platform.python_version()}, "
        "`load_model(path, lrn_mode=\"fast\")`, `model(*inputs)` under `torch.no_grad()`",
        f"- MatConvNet: the twostreamfusion fork (a098f08) + MexConv3D built for {info.get('VERSION', 'Octave')} "
        f"by /work/shared/refbuild (mkoctfile -O2, CPU only); BLAS: {info.get('BLAS', 'unknown')}"
        + (f"; OPENBLAS_CORETYPE={args.openblas_coretype}" if args.openblas_coretype else
           " (kernel auto-detected: OPENBLAS_CORETYPE not set)"),
        "",
        "Timing: inside Octave with tic/toc around each `vl_simplenn(net, x, [], [], 'mode', 'test')` / "
        "`net.eval(inputs)` (start-up and loading excluded); here with `time.perf_counter` around "
        "`model(*inputs)`. One warm-up pass each, then the timed passes alternate (MatConvNet first on "
        "even rounds, ours first on odd ones); medians. CPU = process CPU time (all threads; Octave "
        "`cputime`, Python `time.process_time`). Load average = 1-minute load before / after each model; "
        "the box is shared with other engineers' jobs, so wall times are noisy and CPU time is the "
        "steadier figure.",
        "",
        "**ratio = MatConvNet median / matconv-port median** (> 1: the port is faster).",
        "",
        "| model | threads | timed passes | MatConvNet wall | ours wall | ratio (wall) "
        "| MatConvNet CPU | ours CPU | ratio (CPU) | max rel diff of prediction vars | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        diffs = ", ".join(f"`{k}` {v:.1e}" + ("" if v <= args.rtol else " **MISMATCH**")
                          for k, v in r["max_rel_diff"].items())
        la = f"{r['loadavg'][0][0]:.1f} / {r['loadavg'][1][0]:.1f}"
        lines.append(
            f"| {r['key']}: {r['description']} | {r['threads'][0]} | {r['iters']} | "
            f"{_fmt_s(r['wall']['matconvnet'])} | "
            f"{_fmt_s(r['wall']['ours'])} | **{r['ratio_wall']:.2f}** | {_fmt_s(r['cpu']['matconvnet'])} | "
            f"{_fmt_s(r['cpu']['ours'])} | {r['ratio_cpu']:.2f} | {diffs} | {la} |")
    lines += ["", "Every timed pass (wall seconds):", ""]
    for r in results:
        for side in ("matconvnet", "ours"):
            lines.append(f"- {r['key']}, threads={r['threads'][0]}, {side}: "
                         + ", ".join(f"{t:.3f}" for t in r["all_wall"][side]))
    for r in results:
        if not r.get("breakdown"):
            continue
        rows = r["breakdown"]["rows"]
        whole = r["breakdown"]["total"]
        lines += ["", f"Per-layer breakdown, {r['key']}, threads={r['threads'][0]} (one extra pass each after the "
                  "timed ones; MatConvNet's "
                  "own per-layer records `res(i).time` / `layers(l).forwardTime`, ours perf_counter around each "
                  "layer module):", "",
                  "| layer type | layers | MatConvNet | ours | ratio |", "|---|---:|---:|---:|---:|"]
        by_type: dict[str, list[float]] = {}
        for _, typ, a, b in rows:
            acc = by_type.setdefault(typ, [0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += a if a == a else 0.0
            acc[2] += b if b == b else 0.0
        for typ, (n, a, b) in sorted(by_type.items(), key=lambda kv: -max(kv[1][1], kv[1][2])):
            ratio = f"{a / b:.2f}" if a >= 1e-3 and b >= 1e-3 else "(< 1 ms)"
            lines.append(f"| {typ} | {n} | {_fmt_s(a)} | {_fmt_s(b) if b else 'not run'} | {ratio} |")
        tot_a = sum(v[1] for v in by_type.values())
        tot_b = sum(v[2] for v in by_type.values())
        lines.append(f"| all layers | {len(rows)} | {_fmt_s(tot_a)} | {_fmt_s(tot_b)} | {tot_a / tot_b:.2f} |")
        lines.append(f"| whole pass (wall) | | {_fmt_s(whole[0])} | {_fmt_s(whole[1])} | {whole[0] / whole[1]:.2f} |")
        worst = sorted(rows, key=lambda row: -(row[3] - row[2]))[:5]
        lines += ["", "Layers where ours loses most time: " + "; ".join(
            f"`{n}` ({t}) {_fmt_s(a)} vs ours {_fmt_s(b)}" for n, t, a, b in worst if b > a) + "."]
    lines += ["", "Model loading (not timed above): "
              + "; ".join(f"{r['key']} (threads={r['threads'][0]}) MatConvNet {r['load_s']['matconvnet']:.1f} s, "
                          f"ours {r['load_s']['ours']:.1f} s"
                          for r in results) + ".", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--octave-setup", default="/tmp/refbuild", help="folder holding setup_refbuild.m")
    ap.add_argument("--iters", type=int, default=10, help="timed passes per side (vgg16; narrow gets 4x as many)")
    ap.add_argument("--fused-iters", type=int, default=6, help="timed passes per side for the full fused net")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated from {', '.join(MODELS)}")
    ap.add_argument("--threads", default="2",
                    help="threads for both sides; a comma-separated list runs each model at each (default 2)")
    ap.add_argument("--openblas-coretype", default="", help="OPENBLAS_CORETYPE for Octave (default: auto-detect)")
    ap.add_argument("--work", default=DEFAULT_WORK, help=f"work folder for big files (default {DEFAULT_WORK})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the work folder's files")
    ap.add_argument("--results", default=DEFAULT_RESULTS, help="markdown file to (over)write")
    ap.add_argument("--no-results", action="store_true", help="print only")
    ap.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                    help="skip the per-layer pass (vgg16, fused)")
    ap.add_argument("--pause", type=float, default=0.3,
                    help="seconds of sleep before each timed pass, so that the other side's BLAS/OpenMP "
                         "worker threads, which spin for a while after their work, are idle (default 0.3)")
    ap.add_argument("--rtol", type=float, default=1e-4,
                    help="largest max rel diff of a prediction var accepted as the same computation")
    ap.add_argument("--octave-timeout", type=float, default=600.0, help="seconds to wait for one Octave reply")
    args = ap.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in args.models if m not in MODELS]
    if bad:
        ap.error(f"unknown model(s) {', '.join(bad)}; choose from {', '.join(MODELS)}")
    try:
        args.threads = [int(t) for t in str(args.threads).split(",") if t.strip()]
    except ValueError:
        ap.error(f"--threads takes integers, not {args.threads!r}")
    if args.iters < 1 or args.fused_iters < 1 or not args.threads or min(args.threads) < 1:
        ap.error("--iters, --fused-iters and --threads must be >= 1")
    if os.path.abspath(args.work).startswith(REPO + os.sep):
        ap.error(f"refusing to put big files into the repository ({args.work})")
    if not os.path.exists(os.path.join(args.octave_setup, "setup_refbuild.m")):
        ap.error(f"no setup_refbuild.m in {args.octave_setup} (build it with /work/shared/refbuild/build.sh)")
    if shutil.which("octave-cli") is None:
        ap.error("octave-cli is not installed")
    return args


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _child_env(args, nthreads: int) -> dict[str, str]:
    """Octave's environment: the thread count, and OPENBLAS_CORETYPE only if asked."""
    env = dict(os.environ, **{var: str(nthreads) for var in THREAD_VARS})
    if args.openblas_coretype:
        env["OPENBLAS_CORETYPE"] = args.openblas_coretype
    else:
        env.pop("OPENBLAS_CORETYPE", None)
    return env


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for var in THREAD_VARS:
        os.environ[var] = str(max(args.threads))  # before torch is imported; set_num_threads per run
    import torch

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    t_start = time.perf_counter()
    os.makedirs(args.work, exist_ok=True)
    work = tempfile.mkdtemp(prefix="run-", dir=args.work)
    results = []
    try:
        for key in args.models:
            t0 = time.perf_counter()
            case = make_case(key, work, args.seed)
            print(f"[{key}] model ready in {time.perf_counter() - t0:.1f} s: {case.path}", flush=True)
            for nthreads in args.threads:
                env = _child_env(args, nthreads)
                torch.set_num_threads(nthreads)
                r = bench_case(case, args, env, work)
                r["threads"] = (nthreads, torch.get_num_threads())
                results.append(r)
                print(f"[{key}, threads={nthreads}] MatConvNet {_fmt_s(r['wall']['matconvnet'])}, "
                      f"ours {_fmt_s(r['wall']['ours'])}: ratio {r['ratio_wall']:.2f} (wall), "
                      f"{r['ratio_cpu']:.2f} (CPU); max rel diff "
                      + ", ".join(f"{k} {v:.1e}" for k, v in r["max_rel_diff"].items())
                      + f"; load avg {r['loadavg'][0][0]:.1f}/{r['loadavg'][1][0]:.1f}", flush=True)
            if case.generated and not args.keep:
                os.unlink(case.path)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
            try:
                os.rmdir(args.work)
            except OSError:
                pass
    text = report(results, args, started, time.perf_counter() - t_start)
    print(text)
    if not args.no_results:
        from matconv_port.atomic import atomic_write_text

        atomic_write_text(args.results, text + _kept_notes(args.results))
        print(f"written: {args.results}")
    bad = [f"{r['key']}:{k}" for r in results for k, v in r["max_rel_diff"].items() if not v <= args.rtol]
    if bad:
        print(f"MISMATCH (max rel diff > {args.rtol:g}): {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


def _kept_notes(path: str) -> str:
    """The hand-written ``## Notes`` section (to the end) of an existing results file,
    kept across runs."""
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError:
        return ""
    at = text.find("\n## Notes")
    return "" if at < 0 else text[at:]


if __name__ == "__main__":
    sys.exit(main())
