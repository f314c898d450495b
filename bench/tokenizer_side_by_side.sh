#!/usr/bin/env bash
# Tokenizer throughput side by side, in one run on the same text (the default corpus as
# `prepare` reads it): circuitlab's C++ tokenizer (1 and 2 threads, warm word cache) against
# npm tiktoken (wasm) and js-tiktoken, >= 5 repetitions each; prints a markdown table of
# median MB/s and ratios of medians. Usage: bench/tokenizer_side_by_side.sh [REPS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${CIRCUITLAB_BUILD_DIR:-$ROOT/build}"
BENCH="$BUILD_DIR/bench/bench_tokenizer"
REPS="${1:-5}"
export CIRCUITLAB_ASSETS="${CIRCUITLAB_ASSETS:-$ROOT/assets}"
[ -x "$BENCH" ] || { echo "missing $BENCH (build it: scripts/dev-build bench_tokenizer)" >&2; exit 1; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

"$BENCH" --dump-corpus "$TMP/corpus.jsonl" >&2
"$BENCH" --benchmark_filter='BM_EncodeWarm' --benchmark_repetitions="$REPS" \
  --benchmark_report_aggregates_only=false --benchmark_format=json --benchmark_out="$TMP/cpp.json" \
  --benchmark_out_format=json >/dev/null
(cd "$ROOT" && node bench/tokenizer_side_by_side.mjs "$TMP/corpus.jsonl" "$REPS") >"$TMP/node.json"

node - "$TMP/cpp.json" "$TMP/node.json" <<'JS'
const fs = require("fs");
const [cppFile, nodeFile] = process.argv.slice(2);
const cpp = JSON.parse(fs.readFileSync(cppFile, "utf8"));
const nodeRes = JSON.parse(fs.readFileSync(nodeFile, "utf8"));
const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const rows = [];
for (const t of [1, 2]) {
  const runs = cpp.benchmarks.filter((b) => b.run_type === "iteration" && b.name.startsWith(`BM_EncodeWarm/${t}/`));
  rows.push({ name: `circuitlab C++ (${t} thread${t > 1 ? "s" : ""})`, mbps: runs.map((b) => b.bytes_per_second / 1e6) });
}
for (const r of nodeRes.results) rows.push({ name: r.name + " (1 thread)", mbps: r.mbps });
const wasm = median(rows.find((r) => r.name.startsWith("tiktoken")).mbps);
const jsT = median(rows.find((r) => r.name.startsWith("js-tiktoken")).mbps);
console.log(`Default corpus: ${nodeRes.documents} documents, ${(nodeRes.bytes / 1e6).toFixed(2)} MB UTF-8; ` +
            `${rows[0].mbps.length} repetitions each; host ${require("os").cpus().length} cores.\n`);
console.log("| encoder | median MB/s | min | max | × tiktoken-wasm | × js-tiktoken |");
console.log("|---|---:|---:|---:|---:|---:|");
for (const r of rows) {
  const m = median(r.mbps);
  console.log(`| ${r.name} | ${m.toFixed(2)} | ${Math.min(...r.mbps).toFixed(2)} | ${Math.max(...r.mbps).toFixed(2)} | ` +
              `${(m / wasm).toFixed(2)} | ${(m / jsT).toFixed(2)} |`);
}
JS
