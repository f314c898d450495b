// Subcommands of the analysis layer: `analyze` (see apps/commands.h). Thin: options, files
// and a summary line; the work is in analysis/analyze.cpp.
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "analysis/analyze.h"
#include "apps/commands.h"
#include "core/error.h"
#include "core/file_io.h"

namespace circuitlab::apps {

void register_analysis_commands(CLI::App& app) {
  auto o = std::make_shared<analysis::AnalyzeOptions>();
  auto out = std::make_shared<std::string>();
  auto snapshots = std::make_shared<std::string>();
  auto quiet = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "analyze",
      "Run the Framework paper's analyses on a model dir and write analysis.json (schema: analysis/ANALYSIS_JSON.md); "
      "with --snapshots RUN_DIR, track head scores and ICL over a run's snapshots (phase change)");
  cmd->add_option("--model", o->model_dir, "Model dir (config.json + model.safetensors), toy or GPT-2");
  cmd->add_option("--snapshots", *snapshots, "Run dir whose snapshots/step_<N>/ are analysed instead of --model");
  cmd->add_option("--data", o->data_dir, "Prepared shards dir (train.bin, val.bin[, token_counts.json]) for ICL, "
                                         "term importance, corpus bigrams and text-based head scores");
  cmd->add_option("--out", *out, "Output JSON file (written atomically)")->required();
  cmd->add_option("--threads", o->threads, "Intra-op threads (0: keep the default)");
  cmd->add_option("--seed", o->seed, "Seed for random token sequences and the composition baseline");
  cmd->add_option("--windows", o->windows, "Val windows for ICL and term importance")->check(CLI::Range(1, 100000));
  cmd->add_option("--window-len", o->window_len, "Window length (capped at n_ctx)")->check(CLI::Range(8, 100000));
  const std::map<std::string, analysis::Precision> precisions = {
      {"auto", analysis::Precision::Auto}, {"double", analysis::Precision::Double}, {"float", analysis::Precision::Float}};
  cmd->add_option("--precision", o->precision, "Precision of the vocab-sized GEMMs: double, float or auto")
      ->transform(CLI::CheckedTransformer(precisions, CLI::ignore_case));
  cmd->add_option("--per-head-max", o->per_head_max, "Per-head ablations only for models with at most this many heads");
  cmd->add_option("--bigram-rows", o->bigram_rows, "Rows of the bigram table");
  cmd->add_option("--top-k", o->top_k, "Entries per bigram / skip-trigram list")->check(CLI::Range(1, 1000));
  cmd->add_option("--skip-sources", o->skip_sources, "Source tokens per head in the skip-trigram tables");
  cmd->add_option("--prev-token-threshold", o->thresholds.prev_token, "Label threshold");
  cmd->add_option("--induction-threshold", o->thresholds.induction, "Label / phase-change threshold");
  cmd->add_option("--duplicate-threshold", o->thresholds.duplicate, "Label threshold");
  cmd->add_option("--prefix-threshold", o->thresholds.prefix_matching, "Label threshold");
  cmd->add_option("--copying-threshold", o->thresholds.copying, "Label threshold");
  cmd->add_option("--first-token-threshold", o->thresholds.first_token, "Label threshold");
  cmd->add_flag("--quiet", *quiet, "No progress bar");
  cmd->callback([o, out, snapshots, quiet]() {
    set_threads(o->threads);
    o->progress = !*quiet;
    if (!o->data_dir.empty() && !file_exists(o->data_dir + "/val.bin"))
      fail("--data " + o->data_dir + ": val.bin not found (expected a dir written by `circuitlab prepare`)");
    if (!snapshots->empty()) {
      nlohmann::json j = analysis::analyze_snapshots(*snapshots, *o);
      analysis::write_json_atomic(*out, j);
      const auto& pc = j["phase_change"];
      std::printf("wrote %s: %zu snapshots, phase change %s\n", out->c_str(), j["snapshots"].size(),
                  pc["step"].is_null() ? "not reached" : ("at step " + pc["step"].dump()).c_str());
      return;
    }
    if (o->model_dir.empty()) fail("analyze: give --model DIR (or --snapshots RUN_DIR)");
    nlohmann::json j = analysis::analyze_model(*o);
    analysis::write_json_atomic(*out, j);
    std::printf("wrote %s (%zu heads, %.1f s)\n", out->c_str(), j["heads"].size(), j["elapsed_s"].get<double>());
  });
}

}  // namespace circuitlab::apps
