#!/usr/bin/env bash
# Side by side on one GPT-2-small-shaped random checkpoint: circuitlab's weight analyses
# (bench_analysis, Google Benchmark, median of 5) and the TransformerLens-style torch
# computation of the same numbers (bench/analysis_tl_style.py, median of 3), with the ratio
# and the worst differences between the two sets of numbers.
#   bench/analysis_side_by_side.sh [build dir]     (2 threads each; set CIRCUITLAB_THREADS)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$ROOT/build}"
export CIRCUITLAB_BENCH_DIR="${CIRCUITLAB_BENCH_DIR:-/tmp/circuitlab_bench_analysis}"
T="${CIRCUITLAB_THREADS:-2}"
export CIRCUITLAB_THREADS="$T" OPENBLAS_NUM_THREADS="$T" OMP_NUM_THREADS="$T" OMP_WAIT_POLICY=PASSIVE
"$BUILD/bench/bench_analysis" --benchmark_format=json --benchmark_out="$CIRCUITLAB_BENCH_DIR/cpp_bench.json" \
  --benchmark_out_format=json >/dev/null
/usr/bin/python3 "$ROOT/bench/analysis_tl_style.py" "$CIRCUITLAB_BENCH_DIR" --threads "$T" > "$CIRCUITLAB_BENCH_DIR/tl_style.json"
/usr/bin/python3 - "$CIRCUITLAB_BENCH_DIR" <<'PY'
import json, sys
d = sys.argv[1]
b = json.load(open(d + "/cpp_bench.json"))
tl = json.load(open(d + "/tl_style.json"))
med = {bm["run_name"]: bm["real_time"] / 1000.0 for bm in b["benchmarks"] if bm.get("aggregate_name") == "median"}
print("| computation (144 heads full-vocab OV+QK positivity, all Q/K/V composition) | median s |")
print("|---|---|")
for k, v in med.items():
    print(f"| circuitlab {k.split('/')[-1] if '/' in k else k} | {v:.3f} |")
print(f"| TransformerLens-style torch (float32) | {tl['tl_style_median_s']:.3f} |")
best = min(med.values())
print(f"\nratio TL-style / circuitlab (fastest): {tl['tl_style_median_s'] / best:.1f}x")
print(f"max |diff|: OV positivity {tl['max_abs_diff_ov_positivity']:.2e}, QK positivity {tl['max_abs_diff_qk_positivity']:.2e}, composition {tl['max_abs_diff_composition']:.2e}")
PY
