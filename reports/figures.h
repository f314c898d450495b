// Vega-Lite specs of the report's figures, generated from the run inputs with nlohmann::json.
// One function per figure of the paper; each returns nullopt when its inputs are absent
// (e.g. no --data for term importance). Not a renderer and not a layout: see report.cpp.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "reports/report.h"
#include "reports/run_inputs.h"

namespace circuitlab::reports {

// Limits that keep index.html small (attention patterns dominate its size).
struct FigureLimits {
  size_t max_attention_cells = 60000;  // per figure (heads × causal T(T+1)/2 cells)
  size_t max_composition_cells = 24000;
  size_t max_curve_points = 500;       // per run and split in loss curves
};

std::optional<Figure> fig_loss_curves(const std::vector<const RunInputs*>& runs, const FigureLimits& lim,
                                      std::vector<std::string>* notes);
std::optional<Figure> fig_icl_over_training(const std::vector<const RunInputs*>& runs);
std::optional<Figure> fig_loss_by_position(const std::vector<const RunInputs*>& runs);
std::optional<Figure> fig_bigram_stats(const std::vector<const RunInputs*>& runs);
std::optional<Figure> fig_positivity(const RunInputs& run);
std::optional<Figure> fig_attention(const RunInputs& run, const nlohmann::json& sample, const FigureLimits& lim,
                                    std::vector<std::string>* notes);
// One head's pattern on a sample, large, with the tokens on the axes (the paper's style).
std::optional<Figure> fig_attention_detail(const RunInputs& run, const nlohmann::json& sample, int layer, int head,
                                           const std::string& why);
std::optional<Figure> fig_head_scores(const RunInputs& run);
std::optional<Figure> fig_composition(const RunInputs& run, const FigureLimits& lim, std::vector<std::string>* notes);
std::optional<Figure> fig_kcomp_scatter(const RunInputs& run);
std::optional<Figure> fig_term_importance(const RunInputs& run);
std::optional<Figure> fig_head_ablation(const RunInputs& run);
std::optional<Figure> fig_phase_change(const RunInputs& run);

// The common frame of every figure: schema, title, white background, fonts.
nlohmann::json base_spec(const std::string& title);

// "attn2l" → "attn2l", "runs/my run" → "my-run": ids safe for file names and HTML ids.
std::string slug(const std::string& s);

}  // namespace circuitlab::reports
