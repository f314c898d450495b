#!/usr/bin/env bash
# Every benchmark of circuitlab in one go (`./run bench`): the side-by-side comparisons
# (tokenizer vs npm tiktoken/js-tiktoken, forward and training vs PyTorch eager, weight
# analyses vs a TransformerLens-style torch computation) and the lab's latency/load.
# Each prints medians and ratios; expect ~15 minutes on 2 cores. Not run by ctest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${CIRCUITLAB_BUILD_DIR:-$ROOT/build}"
export CIRCUITLAB_BUILD_DIR="$BUILD_DIR"
OUT="$ROOT/runs/bench"
mkdir -p "$OUT"
section() { printf '\n== %s\n' "$1"; }

section "tokenizer (MB/s, 1 and 2 threads, beside tiktoken-wasm and js-tiktoken)"
"$ROOT/bench/tokenizer_side_by_side.sh" 5
section "GPT-2-small-shaped forward, 64 tokens, full cache, beside PyTorch eager"
/usr/bin/python3 "$ROOT/bench/forward_vs_torch.py" --threads 1
section "attn2l training tokens/s beside PyTorch eager; FLOP/s vs sgemm"
"$ROOT/bench/bench_train.sh" 1 3
section "lab preset (GPT-2 blocks) training tokens/s beside PyTorch eager, 1 and 2 threads; FLOP/s vs sgemm"
"$ROOT/bench/bench_train.sh" 1 3 lab
"$ROOT/bench/bench_train.sh" 2 3 lab
section "SAE TopK training step beside PyTorch eager (SAELens-style), GPT-2-small shape and a toy, 1 and 2 threads"
"$ROOT/bench/sae_side_by_side.sh" 1 3
"$ROOT/bench/sae_side_by_side.sh" 2 3
section "weight analyses on a GPT-2-small-shaped checkpoint beside TransformerLens-style torch"
"$ROOT/bench/analysis_side_by_side.sh" "$BUILD_DIR"
section "lab: run round trip and Features round trip (64 tokens), and 60 s load test"
"$BUILD_DIR/bench/bench_server_run" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
"$BUILD_DIR/bench/bench_server_load" --seconds 60 --clients 4 --json "$OUT/server_load.json"
section "SAE feature dashboards (sae features): the demo's lab shape (2048 latents x 65536 tokens) and GPT-2 small (24576 x 8192)"
"$BUILD_DIR/bench/bench_sae" --benchmark_filter=BM_SaeFeatures
section "report generation"
"$BUILD_DIR/bench/bench_report" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
