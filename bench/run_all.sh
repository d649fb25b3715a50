#!/bin/sh
# Run every pitr-bot benchmark, one after the other (about 15 minutes), from the repo root:
#   sh bench/run_all.sh            # or: bench/run_all.sh > bench-results.md
# Each prints Markdown tables; none asserts timings. Extra JSON goes to $BENCH_OUT (optional).
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${BENCH_OUT:-}
json() { if [ -n "$OUT" ]; then mkdir -p "$OUT"; echo "--json $OUT/$1.json"; fi; }
echo "## cold start"
# shellcheck disable=SC2046
$PY bench/cold_start.py $(json cold_start)
echo "## ack latency"
# shellcheck disable=SC2046
$PY bench/ack_latency.py $(json ack_latency)
echo "## fifty restores (with the boto3 waiter baseline, same run)"
# shellcheck disable=SC2046
$PY bench/fifty_restores.py $(json fifty_restores)
echo "## ETA-driven polling: lag and calls on a virtual clock (with history, then without)"
# shellcheck disable=SC2046
$PY bench/eta_polling.py $(json eta_polling)
# shellcheck disable=SC2046
$PY bench/eta_polling.py --fresh $(json eta_polling_fresh)
echo "## ETA-driven polling: bot CPU tracking 50 restores (real bot, time-compressed 10x)"
# shellcheck disable=SC2046
$PY bench/eta_polling.py --cpu $(json eta_polling_cpu)
