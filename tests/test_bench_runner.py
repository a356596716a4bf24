"""``benchmarks/run_all.py``: what it records and how it skips (no benchmark runs here)."""
from __future__ import annotations

import importlib.util
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def run_all():
    spec = importlib.util.spec_from_file_location("run_all", os.path.join(ROOT, "benchmarks", "run_all.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("run_all", None)


def test_every_bench_script_is_in_the_table(run_all):
    scripts = {f for f in os.listdir(os.path.join(ROOT, "benchmarks")) if f.startswith("bench_") and f.endswith(".py")}
    assert scripts == {b.script for b in run_all.BENCHES}


def test_skips_say_why_and_results_record_the_run(run_all, tmp_path, monkeypatch):
    gpu = run_all.Bench("gpu", "bench_gpu.py", "a GPU-only benchmark", full=[], quick=[], gpu_only=True)
    heavy = run_all.Bench("heavy", "bench_heavy.py", "big files", full=[], quick=None, quick_skip="needs 1 GB")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    outcomes = [run_all.run_bench(gpu, quick=False), run_all.run_bench(heavy, quick=True)]
    assert [o.status for o in outcomes] == ["skipped", "skipped"]
    assert "CUDA" in outcomes[0].reason and "needs 1 GB" in outcomes[1].reason
    ok = run_all.Outcome(heavy, "ok", 12.0, "setup\nratio ours/plain throughput (medians): 0.950\nmore")
    path = str(tmp_path / "RESULTS.md")
    run_all.write_results(path, run_all.machine_record(), outcomes + [ok], quick=True)
    text = open(path).read()
    for field in ("| date |", "| commit |", "| machine |", "| torch |", "median of at least 5"):
        assert field in text
    assert "skipped: needs a CUDA GPU" in text and "ratio ours/plain throughput (medians): 0.950" in text


def test_report_md_text_joins_the_output_and_the_temp_file_goes(run_all, tmp_path, monkeypatch):
    script = tmp_path / "bench_md.py"
    script.write_text("import sys\npath = sys.argv[sys.argv.index('--report-md') + 1]\n"
                      "open(path, 'w').write('| mode | top-1 agreement |\\n| bf16 | 99.0% |\\n')\n"
                      "print('speed ratio 1.5')\n")
    monkeypatch.setattr(run_all, "HERE", str(tmp_path))
    bench = run_all.Bench("md", "bench_md.py", "writes a table", full=[], quick=[], report_md=True)
    o = run_all.run_bench(bench, quick=False)
    assert o.status == "ok" and "speed ratio 1.5" in o.output and "| bf16 | 99.0% |" in o.output
    assert not list(tmp_path.glob("run_all_md_*")) and not any(
        p.startswith("run_all_md_") for p in os.listdir(__import__("tempfile").gettempdir()))
    # a run cut short: the benchmarks after it are written as not run, with the reason
    pending = run_all.Outcome(bench, "not run", reason="the run stopped before it")
    path = str(tmp_path / "RESULTS.md")
    run_all.write_results(path, run_all.machine_record(), [o, pending], quick=False)
    text = open(path).read()
    assert "| not run | 0 s | not run: the run stopped before it |" in text and "Not run: the run stopped" in text
