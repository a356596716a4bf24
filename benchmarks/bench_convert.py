"""Conversion speed and memory benchmark (issue 3, "Speed and memory").

For each full-size model made by ``make_big_models.py`` (VGG-16 SimpleNN, MAT -v7;
fused two-stream VGG-16 DagNN, MAT -v7.3) this measures, IN THE SAME RUN and in fresh
child processes, interleaved and repeated:

* ``convert``: ``matconv-port convert MODEL.mat -o OUT.pt`` (the installed console
  script; or ``python -c`` calling ``matconv_port.convert.convert_file``);
* ``baseline``: a process that imports torch and decodes the same file with
  ``scipy.io.loadmat`` (-v7) or h5py (-v7.3, every dataset read into memory);
* ``decode+save``: the baseline followed by a ``torch.save`` of every float array it
  decoded (convert must write its output too: this is its practical lower bound);
* ``torch``: a process that only imports torch (the fixed RSS floor of all).

The benchmark process itself stays small (no torch; generation and verification run in
their own children): on Linux a child's ``ru_maxrss`` starts from its parent's peak
when spawned with vfork, so a big parent would inflate every measurement.

Per process: wall time, CPU time (user + sys, less sensitive to a busy machine) and
peak RSS (``ru_maxrss`` of that very child, from ``os.wait4``). Reported ratios:
convert / baseline time (goal <= 1.5) and convert peak RSS / weight bytes (goal <= 2);
also the peak above the torch floor / weight bytes. Medians over ``--repeat`` runs.

``--verify`` checks, outside the measurements, that every param of the converted file
equals the source array (decoded independently with scipy / h5py) bit for bit.

Usage::

    python benchmarks/bench_convert.py [--work /tmp/matconv_bench] [--models vgg16,fused]
        [--repeat 3] [--verify] [--keep] [--append benchmarks/RESULTS_convert.md]
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
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import make_big_models as mbm  # noqa: E402  (the generator beside this file)

MiB = 2 ** 20
TIME_GOAL = 1.5
RSS_GOAL = 2.0

BASELINE_V7 = "import sys, torch, scipy.io\nd = scipy.io.loadmat(sys.argv[1])\n"
BASELINE_V73 = """import sys, torch, h5py
keep = []
def visit(name, obj):
    if isinstance(obj, h5py.Dataset):
        keep.append(obj[()])
with h5py.File(sys.argv[1], "r") as f:
    f.visititems(visit)
"""
#: the same decode, then every array written with torch.save (a lower bound for convert,
#: which must write its output too)
SAVE_TAIL = """import os
arrays = [torch.from_numpy(a) for a in ARRAYS if getattr(a, "dtype", None) is not None and a.dtype.kind == "f"]
torch.save(arrays, sys.argv[2])
os.unlink(sys.argv[2])
"""
TORCH_ONLY = "import torch\n"
CONVERT_PY = ("import sys\nfrom matconv_port.convert import convert_file\n"
              "convert_file(sys.argv[1], sys.argv[2], log=lambda m: None)\n")


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    peak_rss: int  # bytes
    rc: int
    stderr: str = ""


def run_measured(cmd: list[str], cwd: str | None = None, pythonpath: str | None = None) -> Run:
    """Run ``cmd`` in a fresh child (in ``cwd``: not the repository, whose folders
    would shadow the installed package for ``python -c``; with ``pythonpath`` put
    first on ``PYTHONPATH``); its own wall time, CPU time and peak RSS."""
    env = None
    if pythonpath:
        env = dict(os.environ)
        env["PYTHONPATH"] = pythonpath + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd, env=env)
    # os.wait4 gives the rusage of THIS child only (RUSAGE_CHILDREN would be the max
    # over every child so far). stderr is small; read it after the wait.
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    return Run(wall, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss) * 1024, proc.returncode, err)


def convert_command(src: str, out: str, mode: str) -> list[str]:
    if mode == "cli":
        exe = shutil.which("matconv-port")
        if exe:
            return [exe, "convert", src, "-o", out]
    return [sys.executable, "-c", CONVERT_PY, src, out]


def baseline_command(src: str, mat_version: str, save_to: str | None = None) -> list[str]:
    """The plain decode; with ``save_to``, followed by a torch.save of every float array."""
    code = BASELINE_V73 if mat_version == "7.3" else BASELINE_V7
    if save_to is None:
        return [sys.executable, "-c", code, src]
    if mat_version == "7.3":
        code += SAVE_TAIL.replace("ARRAYS", "keep")
    else:
        code += _V7_ARRAYS + SAVE_TAIL.replace("ARRAYS", "_arrays(d)")
    return [sys.executable, "-c", code, src, save_to]


_V7_ARRAYS = """import numpy as np
def _arrays(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from _arrays(x)
    elif isinstance(v, np.ndarray) and v.dtype.names:
        for name in v.dtype.names:
            for x in v[name].flat:
                yield from _arrays(x)
    elif isinstance(v, np.ndarray) and v.dtype == object:
        for x in v.flat:
            yield from _arrays(x)
    elif isinstance(v, np.ndarray):
        yield v
"""


def warm_cache(path: str) -> None:
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


# ----------------------------------------------------------------------------- verification


def _source_params_v7(path: str) -> dict:
    """{fromSimpleNN param name: array} of a SimpleNN -v7 file, decoded with scipy."""
    import scipy.io

    d = scipy.io.loadmat(path, squeeze_me=False, struct_as_record=True)
    layers = d["net"]["layers"][0, 0]
    out = {}
    for i in range(layers.size):
        layer = layers.flat[i]  # a 1x1 struct (structured array)
        if str(layer["type"][0, 0][0]) != "conv":
            continue
        name = str(layer["name"][0, 0][0])
        weights = layer["weights"][0, 0]  # 1x2 cell: filters, biases
        out[name + "f"] = weights.flat[0]
        out[name + "b"] = weights.flat[1]
    return out


def _source_params_v73(path: str) -> dict:
    """{param name: array in MATLAB index order} of a saved DagNN -v7.3 file, with h5py."""
    import h5py
    import numpy as np

    out = {}
    with h5py.File(path, "r") as f:
        names = f["net"]["params"]["name"][()].reshape(-1)
        values = f["net"]["params"]["value"][()].reshape(-1)
        for nref, vref in zip(names, values):
            name = "".join(chr(c) for c in f[nref][()].reshape(-1))
            out[name] = np.asarray(f[vref][()]).transpose()
    return out


def verify(src: str, converted: str, mat_version: str) -> str:
    """'' if every param of ``converted`` equals the source bit for bit, else a message."""
    import numpy as np
    import torch

    from matconv_port.layers.registry import param_to_matconvnet

    source = _source_params_v73(src) if mat_version == "7.3" else _source_params_v7(src)
    payload = torch.load(converted, map_location="cpu", weights_only=True, mmap=True)
    info = payload["param_info"]
    if set(info) != set(source):
        return f"param names differ: only in source {sorted(set(source) - set(info))[:5]}, " \
               f"only in converted {sorted(set(info) - set(source))[:5]}"
    for name, ref in source.items():
        got = param_to_matconvnet(info[name]["layout"], payload["params"][name], tuple(info[name]["shape"]))
        ref = np.asarray(ref)
        if got.shape != ref.reshape(got.shape).shape or not np.array_equal(got, ref.reshape(got.shape)):
            return f"param {name!r} differs from the source"
    return ""


# ----------------------------------------------------------------------------- report


def machine_info() -> dict[str, str]:
    model = platform.processor() or "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
            mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    try:
        from importlib.metadata import version

        torch_version = version("torch")
    except Exception:  # noqa: BLE001  (informational only)
        torch_version = "?"
    return {"cpu": model, "cores": str(os.cpu_count()), "ram": mem, "load": load,
            "python": platform.python_version(), "torch": torch_version,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _git_rev() -> str:
    try:
        out = subprocess.run(["git", "-C", mbm.REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", mbm.REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + (" (+ uncommitted changes)" if dirty else "")
    except OSError:
        return "?"


def summarise(key: str, info: dict, runs: dict[str, list[Run]], variant: str = "convert") -> dict:
    med = {k: (statistics.median(r.wall_s for r in v), statistics.median(r.cpu_s for r in v),
               max(r.peak_rss for r in v)) for k, v in runs.items()}
    w = info["weight_bytes"]
    bw, bc, br = med["baseline"]
    cw, cc, cr = med[variant]
    tr = med["torch"][2]
    sw, sc, sr = med["decode+save"]
    label = key if variant == "convert" else f"{key} [{variant[len('convert:'):]}]"
    return {"model": label, "mat": info["mat_version"], "weights_mib": w / MiB, "file_mib": info["file_bytes"] / MiB,
            "base_wall": bw, "conv_wall": cw, "time_ratio": cw / bw, "base_cpu": bc, "conv_cpu": cc,
            "cpu_ratio": cc / bc, "torch_mib": tr / MiB, "base_peak_mib": br / MiB, "conv_peak_mib": cr / MiB,
            "peak_ratio": cr / w, "peak_above_torch_ratio": (cr - tr) / w,
            "base_peak_ratio": br / w, "n": len(runs[variant]), "save_wall": sw, "save_cpu": sc,
            "save_ratio": cw / sw, "save_cpu_ratio": cc / sc}


def markdown(rows: list[dict], machine: dict[str, str], label: str) -> str:
    lines = [f"### {label}", "",
             f"{machine['date']}; {machine['cpu']}, {machine['cores']} cores, {machine['ram']} RAM; "
             f"load average at the end {machine['load']}; Python {machine['python']}, torch {machine['torch']}; "
             f"commit {_git_rev()}", "",
             "| model | MAT | weights MiB | baseline wall s | convert wall s | **time ratio** | baseline CPU s | "
             "convert CPU s | CPU ratio | torch-only peak MiB | baseline peak MiB | convert peak MiB | "
             "**peak / weights** | (peak - torch) / weights | decode+save wall s | decode+save CPU s | "
             "convert / decode+save (wall, CPU) | runs |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ok_t = "ok" if r["time_ratio"] <= TIME_GOAL else "over"
        ok_m = "ok" if r["peak_ratio"] <= RSS_GOAL else "over"
        lines.append(
            f"| {r['model']} | {r['mat']} | {r['weights_mib']:.0f} | {r['base_wall']:.1f} | {r['conv_wall']:.1f} | "
            f"**{r['time_ratio']:.2f}** ({ok_t}) | {r['base_cpu']:.1f} | {r['conv_cpu']:.1f} | {r['cpu_ratio']:.2f} | "
            f"{r['torch_mib']:.0f} | {r['base_peak_mib']:.0f} | {r['conv_peak_mib']:.0f} | "
            f"**{r['peak_ratio']:.2f}** ({ok_m}) | {r['peak_above_torch_ratio']:.2f} | {r['save_wall']:.1f} | "
            f"{r['save_cpu']:.1f} | {r['save_ratio']:.2f}, {r['save_cpu_ratio']:.2f} | {r['n']} |")
    lines.append("")
    return "\n".join(lines)


def append_atomic(path: str, text: str) -> None:
    old = ""
    if os.path.exists(path):
        with open(path) as fh:
            old = fh.read()
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".md", dir=folder)
    with os.fdopen(fd, "w") as fh:
        fh.write(old + ("\n" if old and not old.endswith("\n") else "") + text)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- main


def bench_model(key: str, path: str, repeat: int, mode: str, do_verify: bool,
                variants: dict[str, str] | None = None, log=print) -> list[dict]:
    """Measure one model; ``variants``: label -> folder put first on PYTHONPATH for an
    extra ``convert`` run (e.g. an overlay holding a changed copy of the package)."""
    info = mbm.read_manifest(path)
    out = os.path.splitext(path)[0] + ".pt"
    warm_cache(path)
    variants = variants or {}
    kinds = ["torch", "baseline", "decode+save", "convert"] + [f"convert:{v}" for v in variants]
    runs: dict[str, list[Run]] = {k: [] for k in kinds}
    outs = {"convert": out}
    outs.update({f"convert:{v}": f"{os.path.splitext(path)[0]}.{v}.pt" for v in variants})
    cmds = {"baseline": baseline_command(path, info["mat_version"]),
            "decode+save": baseline_command(path, info["mat_version"], os.path.splitext(path)[0] + ".baseline.pt"),
            "torch": [sys.executable, "-c", TORCH_ONLY]}
    cmds.update({k: convert_command(path, o, mode) for k, o in outs.items()})
    for i in range(repeat):
        order = kinds if i % 2 == 0 else kinds[::-1]
        for kind in order:
            if kind in outs and os.path.exists(outs[kind]):
                os.unlink(outs[kind])
            pythonpath = variants.get(kind.partition(":")[2]) if ":" in kind else None
            r = run_measured(cmds[kind], cwd=os.path.dirname(path), pythonpath=pythonpath)
            if r.rc != 0:
                raise SystemExit(f"{kind} of {path} failed (exit {r.rc}):\n{r.stderr[-2000:]}")
            runs[kind].append(r)
            log(f"  {key} {kind:11s} run {i + 1}: wall {r.wall_s:6.1f} s  cpu {r.cpu_s:6.1f} s  "
                f"peak {r.peak_rss / MiB:7.0f} MiB")
    for kind, converted in outs.items() if do_verify else ():
        res = subprocess.run([sys.executable, os.path.abspath(__file__), "--verify-only", path, converted,
                              info["mat_version"]], capture_output=True, text=True, cwd=os.path.dirname(path))
        msg = (res.stdout.strip() or res.stderr.strip()[-2000:]) if res.returncode else ""
        log(f"  {key} {kind} verify: {'OK, every param bit-identical' if not msg else 'FAILED: ' + msg}")
        if msg:
            raise SystemExit(f"verification failed for {converted}: {msg}")
    return [summarise(key, info, runs, k) for k in kinds if k.startswith("convert")]


def ensure_models(work: str, which: list[str], log=print) -> dict[str, str]:
    """Run the generator in a child (it needs about 2 GB for the -v7 file) when a model
    or its manifest is missing."""
    missing = [k for k in which if not os.path.exists(os.path.join(work, mbm.MAKERS[k][0]) + ".json")]
    if missing:
        gen = os.path.join(os.path.dirname(os.path.abspath(__file__)), "make_big_models.py")
        subprocess.run([sys.executable, gen, "--out", work, "--which", ",".join(missing)], check=True)
    return {k: os.path.join(work, mbm.MAKERS[k][0]) for k in which}


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) == 5 and sys.argv[1] == "--verify-only":
        msg = verify(sys.argv[2], sys.argv[3], sys.argv[4])
        print(msg)
        return 1 if msg else 0
    ap = argparse.ArgumentParser(description="matconv-port convert: speed and memory vs. a plain decode")
    ap.add_argument("--work", default=mbm.DEFAULT_OUT, help=f"folder for the big files (default {mbm.DEFAULT_OUT})")
    ap.add_argument("--models", default="vgg16,fused", help="comma-separated: vgg16, fused")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each process (median reported)")
    ap.add_argument("--mode", choices=("cli", "python"), default="cli",
                    help="cli: the matconv-port console script; python: python -c convert_file(...)")
    ap.add_argument("--verify", action="store_true", help="check the converted params against the source")
    ap.add_argument("--keep", action="store_true", help="keep the generated .mat and converted .pt files")
    ap.add_argument("--append", metavar="FILE.md", help="append the results table to this markdown file")
    ap.add_argument("--label", default="conversion benchmark", help="heading of the appended section")
    ap.add_argument("--variant", action="append", default=[], metavar="LABEL=DIR",
                    help="also time convert with DIR first on PYTHONPATH (a changed copy of the package), "
                         "in the same run (repeatable)")
    args = ap.parse_args(argv)
    if os.path.abspath(args.work).startswith(mbm.REPO + os.sep):
        print(f"refusing to use a work folder inside the repository ({args.work})", file=sys.stderr)
        return 2
    which = [w.strip() for w in args.models.split(",") if w.strip()]
    bad = [w for w in which if w not in mbm.MAKERS]
    if bad:
        print(f"unknown model(s): {', '.join(bad)} (choose from {', '.join(mbm.MAKERS)})", file=sys.stderr)
        return 2
    variants = {}
    for item in args.variant:
        label, sep, folder = item.partition("=")
        if not sep or not os.path.isdir(folder):
            print(f"--variant wants LABEL=DIR with an existing DIR, not {item!r}", file=sys.stderr)
            return 2
        variants[label] = os.path.abspath(folder)
    paths = ensure_models(args.work, which)
    rows = []
    try:
        for key in which:
            rows += bench_model(key, paths[key], max(1, args.repeat), args.mode, args.verify, variants)
    finally:
        if not args.keep:
            for p in paths.values():
                extra = [f"{os.path.splitext(p)[0]}.{v}.pt" for v in variants]
                for f in [p, p + ".json", os.path.splitext(p)[0] + ".pt"] + extra:
                    if os.path.exists(f):
                        os.unlink(f)
    text = markdown(rows, machine_info(), args.label)
    print()
    print(text)
    if args.append:
        append_atomic(args.append, text)
    failed = [r["model"] for r in rows if r["time_ratio"] > TIME_GOAL or r["peak_ratio"] > RSS_GOAL]
    if failed:
        print(f"goals (time <= {TIME_GOAL}x, peak RSS <= {RSS_GOAL}x weights) not met for: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
