#!/usr/bin/env bash
# The GPU check of issue 14, in ONE call on a GPU machine (at most 6 minutes on one H200):
#   1. install the project (no network: --no-deps; editable, else --target + PYTHONPATH, else the source tree);
#   2. run the `gpu` tests (pytest -m gpu; log saved);
#   3. run the GPU benchmarks (BENCHES below), each writing one markdown section;
#   4. assemble benchmarks/RESULTS_gpu.md: GPU, driver, torch/CUDA/cuDNN, commit, date, every section.
#
# Usage: bash benchmarks/gpu_check.sh            # on the GPU machine; writes benchmarks/RESULTS_gpu.md
#        bash benchmarks/gpu_check.sh --small    # CPU dry run: tiny sizes, device cpu, results in a temp folder
# Env:   PYTHON (default python3), GPU_CHECK_COMMIT (the commit to record when the copy has no .git),
#        GPU_CHECK_DEVICE (default cuda), GPU_CHECK_BUDGET_S (default 345, --small 900: the whole script's time budget).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
PY="${PYTHON:-python3}"
SMALL=0
[[ "${1:-}" == "--small" ]] && SMALL=1
BUDGET="${GPU_CHECK_BUDGET_S:-$([[ $SMALL == 1 ]] && echo 900 || echo 345)}"  # the dry run's CPU time is no goal
SECONDS=0

# Each benchmark: name (benchmarks/<name>.py) and its time limit in seconds. Other helpers append theirs here
# (bench_eval_gpu, bench_flow_gpu); every one takes --device DEV [--small] --report-md FILE.
BENCHES=(
  "bench_gpu_forward:70"
  "bench_eval_gpu:70"
  "bench_gpu_train:50"
  "bench_flow_gpu:60"
)
BENCH_TOTAL_S=250  # the sum of the limits above; pytest gets the rest of the budget

if [[ $SMALL == 1 ]]; then
  DEV=cpu
  OUTDIR="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
  RESULTS="$OUTDIR/RESULTS_gpu.md"
  export MATCONV_PORT_GPU_TEST_DEVICE=cpu   # the gpu tests' CPU dry run (NCCL tests still skip)
  SMALL_FLAG=(--small)
  MODE="CPU dry run (--small: tiny sizes, device cpu)"
else
  DEV="${GPU_CHECK_DEVICE:-cuda}"
  OUTDIR="$REPO/benchmarks/gpu_check_logs"
  RESULTS="$REPO/benchmarks/RESULTS_gpu.md"
  SMALL_FLAG=()
  MODE="full (device $DEV)"
fi
mkdir -p "$OUTDIR/sections"
export PYTHONUNBUFFERED=1
log() { printf '[gpu_check %3ds] %s\n' "$SECONDS" "$*"; }

# ---------------------------------------------------------------- 1. install (no network)
INSTALL="editable (pip install -e . --no-deps)"
if ! "$PY" -m pip install -q --no-deps --no-build-isolation -e . >"$OUTDIR/install.log" 2>&1; then
  INSTALL="--target $OUTDIR/site + PYTHONPATH"
  if "$PY" -m pip install -q --no-deps --no-build-isolation --target "$OUTDIR/site" . >>"$OUTDIR/install.log" 2>&1; then
    export PYTHONPATH="$OUTDIR/site${PYTHONPATH:+:$PYTHONPATH}"
  else
    INSTALL="source tree on PYTHONPATH (both pip installs failed: see install.log)"
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
  fi
fi
if ! command -v matconv-port >/dev/null 2>&1; then  # the console script, for anything that calls it
  mkdir -p "$OUTDIR/bin"
  printf '#!/bin/sh\nexec "%s" -m matconv_port.cli "$@"\n' "$PY" >"$OUTDIR/bin/matconv-port"
  chmod +x "$OUTDIR/bin/matconv-port"
  export PATH="$OUTDIR/bin:$PATH"
fi
if ! "$PY" -c "import matconv_port" >>"$OUTDIR/install.log" 2>&1; then
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi
log "installed: $INSTALL"

# ---------------------------------------------------------------- environment
COMMIT="${GPU_CHECK_COMMIT:-$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null || echo "unknown (no .git in this copy; set GPU_CHECK_COMMIT)")}"
if [[ -z "${GPU_CHECK_COMMIT:-}" ]] && git -C "$REPO" rev-parse HEAD >/dev/null 2>&1 && \
   [[ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
  COMMIT="$COMMIT (+ uncommitted changes)"
fi
ENV_MD="$("$PY" - "$DEV" <<'PYEOF' 2>&1
import os, platform, subprocess, sys
import torch
dev = sys.argv[1]
rows = [("python", platform.python_version()), ("torch", torch.__version__),
        ("CUDA (torch build)", str(torch.version.cuda)),
        ("cuDNN", str(torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)),
        ("CPU cores", str(os.cpu_count()))]
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    rows += [("GPU", f"{torch.cuda.device_count()} x {p.name}, {p.total_memory / 2**30:.0f} GiB, "
                     f"compute capability {p.major}.{p.minor}")]
    try:
        drv = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
    except Exception as exc:
        drv = f"unknown ({type(exc).__name__})"
    rows.append(("driver", drv))
else:
    rows.append(("GPU", "none (CUDA not available)"))
print("\n".join(f"- {k}: {v}" for k, v in rows))
PYEOF
)"

# ---------------------------------------------------------------- 2. pytest -m gpu
PYTEST_LOG="$OUTDIR/pytest_gpu.log"
PYTEST_LIMIT=$(( BUDGET - BENCH_TOTAL_S ))
(( PYTEST_LIMIT < 60 )) && PYTEST_LIMIT=60
log "pytest -m gpu (limit ${PYTEST_LIMIT}s) -> $PYTEST_LOG"
timeout --kill-after=10 "$PYTEST_LIMIT" "$PY" -m pytest -m gpu -p no:cacheprovider -q -ra tests >"$PYTEST_LOG" 2>&1
PYTEST_RC=$?
PYTEST_SUMMARY="$(grep -E '^(=+ )?[0-9]+ (passed|failed|error|skipped|deselected)|no tests ran' "$PYTEST_LOG" | tail -1 | sed 's/=//g')"
[[ $PYTEST_RC == 124 || $PYTEST_RC == 137 ]] && PYTEST_SUMMARY="TIMED OUT after ${PYTEST_LIMIT}s; ${PYTEST_SUMMARY}"
{
  echo "## pytest -m gpu"
  echo
  echo "Exit status $PYTEST_RC: ${PYTEST_SUMMARY:-no summary line (see the log)}. Log: \`$(basename "$PYTEST_LOG")\` in \`${OUTDIR#$REPO/}\`."
  if grep -qE '^(FAILED|ERROR|SKIPPED)' "$PYTEST_LOG"; then
    echo; echo '```'; grep -E '^(FAILED|ERROR|SKIPPED)' "$PYTEST_LOG" | cut -c1-300 | head -40; echo '```'
  fi
} >"$OUTDIR/sections/00_pytest.md"
log "pytest rc=$PYTEST_RC: $PYTEST_SUMMARY"

# ---------------------------------------------------------------- 3. benchmarks
FAILED=0
[[ $PYTEST_RC != 0 ]] && FAILED=1
i=1
for entry in "${BENCHES[@]}"; do
  name="${entry%%:*}"; limit="${entry##*:}"
  section="$OUTDIR/sections/$(printf '%02d' "$i")_$name.md"; i=$((i + 1))
  left=$(( BUDGET - SECONDS - 5 ))
  if [[ ! -f "benchmarks/$name.py" ]]; then
    printf '## %s\n\nNot run: benchmarks/%s.py is missing.\n' "$name" "$name" >"$section"; FAILED=1; continue
  fi
  [[ $SMALL == 1 ]] && limit=$(( limit * 3 ))  # a shared CPU is slower than the H200 these limits are sized for
  (( limit > left )) && limit=$left
  if (( limit < 15 )); then
    printf '## %s\n\nNot run: the time budget of %ss was spent.\n' "$name" "$BUDGET" >"$section"; FAILED=1; continue
  fi
  log "$name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$PY" "benchmarks/$name.py" --device "$DEV" "${SMALL_FLAG[@]}" \
      --report-md "$section" >"$OUTDIR/$name.log" 2>&1
  rc=$?
  if [[ $rc != 0 || ! -s "$section" ]]; then
    FAILED=1
    { printf '## %s\n\n**FAILED** (exit status %s%s); last lines of `%s.log`:\n\n```\n' "$name" "$rc" \
        "$([[ $rc == 124 || $rc == 137 ]] && echo ", timed out after ${limit}s")" "$name"
      tail -n 15 "$OUTDIR/$name.log" | cut -c1-300; printf '```\n'; } >"$section"
  fi
  log "$name rc=$rc"
done

# ---------------------------------------------------------------- 4. RESULTS_gpu.md
{
  echo "# GPU check (benchmarks/gpu_check.sh)"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- commit: $COMMIT"
  echo "- mode: $MODE; install: $INSTALL"
  echo "$ENV_MD"
  echo "- total time: ${SECONDS}s (budget ${BUDGET}s)"
  for s in "$OUTDIR"/sections/*.md; do echo; cat "$s"; done
} >"$RESULTS.tmp" && mv "$RESULTS.tmp" "$RESULTS"
log "wrote $RESULTS"
exit $FAILED
