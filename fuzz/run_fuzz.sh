#!/usr/bin/env bash
# Runs libFuzzer targets built in build-fuzz/ (./run fuzz builds them), one after another,
# each for SECONDS, on its seeds (fuzz/corpus/<name>) plus a growing work corpus kept in the
# build dir; crashes land in <build>/fuzz-artifacts/<name>/. Exit 1 if any target failed.
#   fuzz/run_fuzz.sh [SECONDS] [target ...]      (default 30 s, all targets)
# Not a CI gate by itself: tests/hardening registers the short runs as ctest label `fuzz`.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${CIRCUITLAB_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
SECONDS_EACH="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$ROOT"/fuzz/fuzz_*.cpp; do n="$(basename "$f" .cpp)"; targets+=("${n#fuzz_}"); done
fi
# Leak checking stays on for every target (LibTorch's one-time allocations stay reachable and
# are not reported); CIRCUITLAB_FUZZ_FLAGS adds libFuzzer flags, e.g. -detect_leaks=0 or -jobs.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# Scratch files (one per input) on tmpfs when there is one: ~10x the executions.
[ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR="${TMPDIR:-/dev/shm}"
export CIRCUITLAB_ASSETS="${CIRCUITLAB_ASSETS:-$ROOT/assets}"
status=0
for t in "${targets[@]}"; do
  exe="$BUILD/fuzz/fuzz_$t"
  [ -x "$exe" ] || { echo "run_fuzz: $exe not built (./run fuzz builds it)" >&2; status=1; continue; }
  work="$BUILD/fuzz-corpus/$t"; art="$BUILD/fuzz-artifacts/$t"
  mkdir -p "$work" "$art"
  extra=(${CIRCUITLAB_FUZZ_FLAGS:-})
  regress=()  # inputs that once crashed this target: replayed first, every run
  [ -d "$ROOT/fuzz/regressions/$t" ] && regress=("$ROOT/fuzz/regressions/$t")
  echo "== fuzz_$t: ${SECONDS_EACH}s" >&2
  log="$BUILD/fuzz-$t.log"
  timeout $((SECONDS_EACH + 120)) "$exe" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$art/" "${extra[@]}" "$work" "$ROOT/fuzz/corpus/$t" \
    ${regress[@]+"${regress[@]}"} >"$log" 2>&1
  rc=$?
  grep -E "^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units|^stat::average_exec_per_sec|^stat::peak_rss_mb" "$log" | sed "s/^/  /" >&2
  if [ $rc -ne 0 ]; then
    echo "run_fuzz: fuzz_$t FAILED (exit $rc); log $log, artifacts in $art:" >&2
    grep -E "ERROR|runtime error|FUZZ_CHECK|SUMMARY|Test unit written" "$log" | head -8 >&2
    status=1
  fi
done
exit $status
