#!/usr/bin/env bash
# A preset's training throughput (attn2l: attention-only; lab: GPT-2 blocks): C++ (bench_train:
# the trainer's step, i.e. the hand-written path of train/fast_transformer.h, and the LibTorch
# autograd step) beside PyTorch eager (bench_train_pytorch.py, Debian python3-torch) in the same run, same model, batch,
# context and threads; achieved model FLOP/s against the measured sgemm FLOP/s (OpenBLAS via
# LibTorch, and oneDNN, which the fast path's GEMMs use). The machine is shared: each of the N
# repetitions runs every measurement once, interleaved, so all see similar load; the table
# gives medians over repetitions and ratios of medians.
# Usage: bench/bench_train.sh [threads=1] [reps=5] [preset=attn2l]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${CIRCUITLAB_BUILD_DIR:-$ROOT/build}"
THREADS="${1:-1}"
REPS="${2:-5}"
PRESET="${3:-attn2l}"
export BENCH_PRESET="$PRESET" BENCH_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" OMP_WAIT_POLICY=PASSIVE
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cd "$ROOT"
for r in $(seq 1 "$REPS"); do
  "$BUILD_DIR/bench/bench_train" --benchmark_filter="BM_TrainStep/$PRESET/|BM_TrainStepAutograd/$PRESET/|BM_Sgemm/1024|BM_SgemmDnnl/1024" \
    --benchmark_format=json >"$TMP/cpp_$r.json" 2>/dev/null
  /usr/bin/python3 "$ROOT/bench/bench_train_pytorch.py" 1 3.0 >>"$TMP/py.jsonl"
  echo "repetition $r/$REPS done" >&2
done
node -e '
const fs = require("fs");
const [dir, reps, threads, preset] = [process.argv[1], +process.argv[2], process.argv[3], process.argv[4]];
let cpp = [];
for (let r = 1; r <= reps; ++r) cpp = cpp.concat(JSON.parse(fs.readFileSync(`${dir}/cpp_${r}.json`, "utf8")).benchmarks);
const py = fs.readFileSync(`${dir}/py.jsonl`, "utf8").trim().split("\n").map(l => JSON.parse(l));
const med = a => { const s = [...a].sort((x, y) => x - y); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const pick = p => cpp.filter(b => b.name.startsWith(p));
const fast = pick("BM_TrainStep/"), auto_ = pick("BM_TrainStepAutograd/");
const sgB = pick("BM_Sgemm/1024"), sgD = pick("BM_SgemmDnnl/1024");
const tokPerIter = fast[0].tokens_per_s * fast[0].real_time / 1e3;  // B*T (real_time in ms)
const flopPerTok = fast[0].flops / fast[0].tokens_per_s;
const fastTok = med(fast.map(b => b.tokens_per_s)), autoTok = med(auto_.map(b => b.tokens_per_s));
const pyTok = med(py.map(r => r.tokens_per_s));
const fastCpu = med(fast.map(b => tokPerIter / (b.cpu_time / 1e3))), autoCpu = med(auto_.map(b => tokPerIter / (b.cpu_time / 1e3)));
const pyCpu = med(py.map(r => r.steps * tokPerIter / r.cpu_seconds));
const sgemmB = med(sgB.map(b => b.flops)), sgemmD = sgD.length ? med(sgD.map(b => b.flops)) : NaN;
const best = Math.max(sgemmB, isNaN(sgemmD) ? 0 : sgemmD);
const fastFlops = fastTok * flopPerTok;
const f = x => x.toFixed(0), g = x => (x / 1e9).toFixed(1), pc = x => (100 * x).toFixed(1) + "%";
console.log(`| ${preset} training, threads ${threads}, ${reps} interleaved reps | median |`);
console.log("|---|---|");
console.log(`| C++ trainer step (hand-written fast path) tokens/s | ${f(fastTok)} |`);
console.log(`| C++ LibTorch autograd step tokens/s | ${f(autoTok)} |`);
console.log(`| PyTorch eager tokens/s | ${f(pyTok)} |`);
console.log(`| **ratio C++ trainer / PyTorch eager** | **${(fastTok / pyTok).toFixed(2)}x** |`);
console.log(`| ratio C++ autograd / PyTorch eager | ${(autoTok / pyTok).toFixed(2)}x |`);
console.log(`| achieved model GFLOP/s (C++ trainer step; ${(flopPerTok / 1e6).toFixed(2)} MFLOP/token) | ${g(fastFlops)} |`);
console.log(`| sgemm 1024^3 GFLOP/s, OpenBLAS (LibTorch) | ${g(sgemmB)} |`);
console.log(`| sgemm 1024^3 GFLOP/s, oneDNN | ${isNaN(sgemmD) ? "n/a" : g(sgemmD)} |`);
console.log(`| **achieved / best sgemm** | **${pc(fastFlops / best)}** |`);
console.log(`| achieved / OpenBLAS sgemm | ${pc(fastFlops / sgemmB)} |`);
if (threads === "1") {
  console.log(`| CPU-time tokens/s: C++ trainer / autograd / PyTorch | ${f(fastCpu)} / ${f(autoCpu)} / ${f(pyCpu)} |`);
  console.log(`| CPU-time ratio C++ trainer / PyTorch eager | ${(fastCpu / pyCpu).toFixed(2)}x |`);
}
' "$TMP" "$REPS" "$THREADS" "$PRESET"
