#!/usr/bin/env bash
# attn2l training throughput: C++ (bench_train: the trainer's step, i.e. the hand-written
# attention-only path, and the LibTorch autograd step) beside PyTorch eager
# (bench_train_pytorch.py, Debian python3-torch) in the same run, same model, batch, context
# and threads; medians of N repetitions, their ratio, and achieved FLOP/s against the measured
# sgemm FLOP/s. Usage: bench/bench_train.sh [threads=1] [reps=5]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${CIRCUITLAB_BUILD_DIR:-$ROOT/build}"
THREADS="${1:-1}"
REPS="${2:-5}"
export BENCH_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" OMP_WAIT_POLICY=PASSIVE
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cd "$ROOT"
"$BUILD_DIR/bench/bench_train" --benchmark_repetitions="$REPS" --benchmark_format=json >"$TMP/cpp.json" 2>/dev/null
/usr/bin/python3 "$ROOT/bench/bench_train_pytorch.py" "$REPS" 3.0 >"$TMP/py.jsonl"
node -e '
const fs = require("fs");
const cpp = JSON.parse(fs.readFileSync(process.argv[1], "utf8")).benchmarks.filter(b => b.run_type === "iteration");
const py = fs.readFileSync(process.argv[2], "utf8").trim().split("\n").map(l => JSON.parse(l));
const med = a => { const s = [...a].sort((x, y) => x - y); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const train = cpp.filter(b => b.name.startsWith("BM_TrainStep/"));
const auto_ = cpp.filter(b => b.name.startsWith("BM_TrainStepAutograd/"));
const sg = cpp.filter(b => b.name.startsWith("BM_Sgemm/1024"));
const cppTok = med(train.map(b => b.tokens_per_s)), cppFlops = med(train.map(b => b.flops));
const pyTok = med(py.map(r => r.tokens_per_s));
const autoTok = auto_.length ? med(auto_.map(b => b.tokens_per_s)) : NaN;
const sgemm = med(sg.map(b => b.flops));
const f = x => x.toFixed(0);
console.log(`| measure (attn2l, threads ${process.argv[3]}, ${train.length} reps) | median |`);
console.log("|---|---|");
console.log(`| C++ training tokens/s (trainer path: fast attention-only) | ${f(cppTok)} |`);
console.log(`| C++ LibTorch autograd training tokens/s | ${f(autoTok)} |`);
console.log(`| PyTorch eager training tokens/s | ${f(pyTok)} |`);
console.log(`| ratio C++ / PyTorch | ${(cppTok / pyTok).toFixed(3)} |`);
console.log(`| ratio C++ autograd / PyTorch | ${(autoTok / pyTok).toFixed(3)} |`);
console.log(`| achieved model GFLOP/s (C++) | ${(cppFlops / 1e9).toFixed(2)} |`);
console.log(`| sgemm 1024^3 GFLOP/s | ${(sgemm / 1e9).toFixed(2)} |`);
console.log(`| achieved / sgemm | ${(100 * cppFlops / sgemm).toFixed(1)}% |`);
' "$TMP/cpp.json" "$TMP/py.jsonl" "$THREADS"
