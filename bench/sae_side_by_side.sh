#!/usr/bin/env bash
# SAE training step, ours (bench_sae: train/sae_step.h) beside PyTorch eager written as SAELens's
# TopK trainer (sae_step_pytorch.py, Debian python3-torch), same activations' shape, k, batch and
# threads, interleaved repetitions on this shared machine; medians and the ratio of medians.
# Shapes: GPT-2-small (d_in 768, d_sae 24576, k 32, 4096 tokens) and a toy (64, 1024, 4, 4096).
# Usage: bench/sae_side_by_side.sh [threads=1] [reps=3]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${CIRCUITLAB_BUILD_DIR:-$ROOT/build}"
THREADS="${1:-1}"
REPS="${2:-3}"
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" OMP_WAIT_POLICY=PASSIVE
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
for r in $(seq 1 "$REPS"); do
  for shape in "768 24576 32 4096" "64 1024 4 4096"; do
    set -- $shape
    "$BUILD_DIR/bench/bench_sae" --benchmark_filter="BM_SaeStep/$1/$2/$3/$4/" --benchmark_format=json \
      --benchmark_min_time=2 >"$TMP/cpp_${r}_$1.json" 2>/dev/null
    /usr/bin/python3 "$ROOT/bench/sae_step_pytorch.py" "$1" "$2" "$3" "$4" "$THREADS" 1 2.0 >>"$TMP/py.jsonl"
  done
  echo "repetition $r/$REPS done" >&2
done
/usr/bin/python3 - "$TMP" "$REPS" "$THREADS" <<'PY'
import glob, json, statistics, sys
tmp, reps, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
py = [json.loads(l) for l in open(f"{tmp}/py.jsonl")]
print(f"SAE TopK training step, {threads} thread(s), medians of {reps} interleaved repetitions")
print("| d_in | d_sae | k | tokens | ours ms/step | PyTorch eager ms/step | ours tok/s | ratio |")
print("|---|---|---|---|---|---|---|---|")
for d_in, d_sae, k, n in [(768, 24576, 32, 4096), (64, 1024, 4, 4096)]:
    ours = []
    for f in glob.glob(f"{tmp}/cpp_*_{d_in}.json"):
        for b in json.load(open(f))["benchmarks"]:
            ours.append(b["real_time"])  # ms
    theirs = [r["step_s"] * 1e3 for r in py if r["d_in"] == d_in]
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f"| {d_in} | {d_sae} | {k} | {n} | {o:.1f} | {t:.1f} | {n / o * 1e3:.0f} | {t / o:.2f}x |")
PY
