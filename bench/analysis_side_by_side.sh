#!/usr/bin/env bash
# Side by side on one GPT-2-small-shaped random checkpoint: circuitlab's weight analyses
# (bench_analysis, Google Benchmark, median of 5, float32 and float64 large GEMMs) and the
# TransformerLens-style torch computation of the same numbers (bench/analysis_tl_style.py,
# median of 3), with wall and whole-process CPU seconds (the machine is shared: CPU seconds
# show the work when other jobs hold the cores), the ratios, and the worst differences
# between the two sets of numbers. Needs bench_analysis built: scripts/dev-build bench_analysis
#   bench/analysis_side_by_side.sh [build dir]   (2 threads each: CIRCUITLAB_THREADS; TL_REPEATS=3)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$ROOT/build}"
export CIRCUITLAB_BENCH_DIR="${CIRCUITLAB_BENCH_DIR:-/tmp/circuitlab_bench_analysis}"
T="${CIRCUITLAB_THREADS:-2}"
export CIRCUITLAB_THREADS="$T" OPENBLAS_NUM_THREADS="$T" OMP_NUM_THREADS="$T" OMP_WAIT_POLICY=PASSIVE
mkdir -p "$CIRCUITLAB_BENCH_DIR"
cut -d' ' -f1-3 /proc/loadavg > "$CIRCUITLAB_BENCH_DIR/load_before"
"$BUILD/bench/bench_analysis" --benchmark_format=json --benchmark_out="$CIRCUITLAB_BENCH_DIR/cpp_bench.json" \
  --benchmark_out_format=json >/dev/null
/usr/bin/python3 "$ROOT/bench/analysis_tl_style.py" "$CIRCUITLAB_BENCH_DIR" --threads "$T" --repeats "${TL_REPEATS:-3}" > "$CIRCUITLAB_BENCH_DIR/tl_style.json"
/usr/bin/python3 - "$CIRCUITLAB_BENCH_DIR" <<'PY'
import json, os, sys
d = sys.argv[1]
b = json.load(open(d + "/cpp_bench.json"))
tl = json.load(open(d + "/tl_style.json"))
rows = {}
for bm in b["benchmarks"]:
    if bm.get("aggregate_name") == "median":
        rows[bm.get("label") or bm["run_name"]] = (bm["real_time"] / 1000.0, bm.get("process_cpu_s", float("nan")))
print(f"load average before/after: {open(d + '/load_before').read().strip()} / {' '.join(open('/proc/loadavg').read().split()[:3])}")
print("| 144 heads full-vocab OV+QK positivity + all Q/K/V composition | median wall s | median process CPU s |")
print("|---|---|---|")
for k, (wall, cpu) in rows.items():
    print(f"| circuitlab ({k}) | {wall:.3f} | {cpu:.3f} |")
print(f"| TransformerLens-style torch (float32) | {tl['tl_style_median_s']:.3f} | {tl['tl_style_median_process_cpu_s']:.3f} |")
best = min(rows.values(), key=lambda r: r[0])
print(f"\nratio TL-style / circuitlab (fastest): wall {tl['tl_style_median_s'] / best[0]:.1f}x, "
      f"process CPU {tl['tl_style_median_process_cpu_s'] / best[1]:.1f}x")
for tag, what in (("", "circuitlab float64"), ("_f32", "circuitlab float32 GEMMs")):
    if "max_abs_diff_ov_positivity" + tag in tl:
        print(f"max |TL-style - {what}|: OV positivity {tl['max_abs_diff_ov_positivity' + tag]:.2e}, "
              f"QK positivity {tl['max_abs_diff_qk_positivity' + tag]:.2e}, composition {tl['max_abs_diff_composition' + tag]:.2e}")
PY
