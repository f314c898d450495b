#!/usr/bin/env bash
# The README's main job on the embedded default corpus (called by `./run demo`).
# Phases: prepare the default corpus -> train attn0l, attn1l, attn2l and the lab model (`lab`:
# attention + MLP blocks on a 10240-id vocabulary, the model the web lab opens on) -> analyse ->
# a TopK SAE on the lab model's residual stream, evaluated, its feature dashboards -> report -> a summary of wall times,
# losses and tokens.
# Env: CIRCUITLAB_THREADS (training threads of the attention-only toys, default 1: the setting
# their seeds were validated at), CIRCUITLAB_LAB_THREADS (threads of the `lab` preset when listed,
# default 2), CIRCUITLAB_DEMO_PRESETS (space-separated list, default "attn0l attn1l attn2l lab"),
# CIRCUITLAB_RUNS (default runs/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${CIRCUITLAB_BUILD_DIR:-$ROOT/build}"
CL="$BUILD_DIR/apps/circuitlab"
RUNS="${CIRCUITLAB_RUNS:-$ROOT/runs}"
THREADS="${CIRCUITLAB_THREADS:-1}"
LAB_THREADS="${CIRCUITLAB_LAB_THREADS:-2}"
PRESETS="${CIRCUITLAB_DEMO_PRESETS:-attn0l attn1l attn2l lab}"
threads_of() { if [ "$1" = lab ]; then echo "$LAB_THREADS"; else echo "$THREADS"; fi; }
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
mkdir -p "$RUNS"
DEMO_START=$(date +%s)
PHASES=()
phase_start() { PHASE_NAME="$1"; PHASE_T0=$(date +%s); echo "== demo: $1" >&2; }
phase_end() { PHASES+=("$PHASE_NAME: $(( $(date +%s) - PHASE_T0 )) s"); }

# --- prepare (data layer) ---
phase_start "prepare"
"$CL" prepare --default --out "$RUNS/data/default" "$@"
"$CL" corpus-stats "$RUNS/data/default"
phase_end

# --- train (train layer): one progress bar per run ---
for preset in $PRESETS; do
  phase_start "train $preset"
  "$CL" train --preset "$preset" --data "$RUNS/data/default" --out "$RUNS/$preset" --threads "$(threads_of "$preset")"
  phase_end
done

# --- analyse (analysis layer): analysis.json per model, phase change over attn2l's snapshots ---
for preset in $PRESETS; do
  phase_start "analyze $preset"
  "$CL" analyze --model "$RUNS/$preset/model" --data "$RUNS/data/default" --out "$RUNS/$preset/analysis.json" \
    --threads "$(threads_of "$preset")"
  if [ "$preset" = attn2l ] && [ -d "$RUNS/$preset/snapshots" ]; then
    "$CL" analyze --snapshots "$RUNS/$preset" --data "$RUNS/data/default" --out "$RUNS/$preset/phase_change.json" \
      --threads "$THREADS"
  fi
  phase_end
done

# --- features (issue 16): one TopK SAE on the lab model's residual stream (attn2l's when lab is skipped) ---
SAE_MODEL=""
for preset in lab attn2l; do
  case " $PRESETS " in *" $preset "*) SAE_MODEL="$preset"; break ;; esac
done
if [ -n "$SAE_MODEL" ]; then
  phase_start "sae $SAE_MODEL"
  "$CL" sae train --model "$RUNS/$SAE_MODEL/model" --hook blocks.1.hook_resid_mid --data "$RUNS/data/default" \
    --out "$RUNS/$SAE_MODEL/sae" --arch topk --d-sae 2048 --k 32 --tokens 1000000 --threads "$(threads_of "$SAE_MODEL")"
  "$CL" sae eval --sae "$RUNS/$SAE_MODEL/sae" --model "$RUNS/$SAE_MODEL/model" --data "$RUNS/data/default" \
    --tokens 16384 --out "$RUNS/$SAE_MODEL/sae/eval.json" --threads "$(threads_of "$SAE_MODEL")"
  # Feature dashboards (issue 17): the report's SAE section and the lab's Features panel read them.
  "$CL" sae features --sae "$RUNS/$SAE_MODEL/sae" --model "$RUNS/$SAE_MODEL/model" --data "$RUNS/data/default" \
    --tokens 65536 --out "$RUNS/$SAE_MODEL/sae/features.json" --threads "$(threads_of "$SAE_MODEL")"
  phase_end
fi

# --- report (reports layer) ---
phase_start "report"
REPORT_RUNS=()
for preset in $PRESETS; do REPORT_RUNS+=("$RUNS/$preset"); done
# GPT-2 section when weights were fetched (`./run fetch-gpt2` writes models/gpt2).
GPT2_ARGS=()
if [ -f "$ROOT/models/gpt2/model.safetensors" ]; then
  mkdir -p "$RUNS/gpt2"
  "$CL" analyze --model "$ROOT/models/gpt2" --data "$RUNS/data/default" --out "$RUNS/gpt2/analysis.json" \
    --threads "$THREADS"
  GPT2_ARGS=(--gpt2 "$RUNS/gpt2/analysis.json")
fi
"$CL" report --runs "${REPORT_RUNS[@]}" "${GPT2_ARGS[@]}" --out "$RUNS/report"
phase_end

# --- summary ---
echo
echo "== demo summary (total $(( $(date +%s) - DEMO_START )) s)"
for p in "${PHASES[@]}"; do echo "  $p"; done
for preset in $PRESETS; do
  s="$RUNS/$preset/summary.json"
  [ -f "$s" ] || continue
  node -e '
    const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const f = (x, d) => (x === null || x === undefined) ? "n/a" : Number(x).toFixed(d);
    console.log(`  ${s.name}: ${s.steps} steps, ${(s.tokens / 1e6).toFixed(2)} M tokens, train loss ${f(s.final_train_loss, 3)}, ` +
                `val loss ${f(s.final_val_loss, 3)} (full GPT-2 vocabulary ${f(s.final_val_loss_full_vocab, 3)}, ` +
                `${f(100 * s.val_vocab_coverage, 1)}% of val tokens in vocabulary), ${s.train_path}, ` +
                `${f(s.elapsed_s, 0)} s -> ${process.argv[2]}/model`);
  ' "$s" "$RUNS/$preset"
done
echo
echo "Report: $RUNS/report/index.html"
echo "Open the lab: $CL serve   (http://127.0.0.1:8080/)"
