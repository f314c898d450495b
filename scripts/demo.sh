#!/usr/bin/env bash
# The README's main job on the embedded default corpus (called by `./run demo`).
# Phases: prepare the default corpus -> (train -> analyse -> report, as they land).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${CIRCUITLAB_BUILD_DIR:-$ROOT/build}"
CL="$BUILD_DIR/apps/circuitlab"
RUNS="${CIRCUITLAB_RUNS:-$ROOT/runs}"
mkdir -p "$RUNS"

"$CL" prepare --default --out "$RUNS/data/default" "$@"
"$CL" corpus-stats "$RUNS/data/default"
