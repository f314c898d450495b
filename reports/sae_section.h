// The report's section for a run's sparse autoencoder: the eval table (eval.json + cfg.json),
// the firing-density histogram (a Vega-Lite figure, features.json's density_histogram) and the
// feature browser — a search box, the list of latents and a page per latent — whose data is
// embedded in the page (trimmed, see SaeEmbedLimits) and drawn by reports/js/feature_browser.js.
// Every number is copied from the SAE's files; nothing is recomputed.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reports/report.h"
#include "reports/run_inputs.h"

namespace circuitlab::reports {

// What the feature browser embeds per SAE: features.json keeps every example; the page keeps
// a budget of context tokens so a 24k-latent SAE still makes a page that opens.
struct SaeEmbedLimits {
  size_t max_context_tokens = 400000;  // all latents' embedded example tokens together
  size_t max_top = 5;                  // top examples per latent (fewer when the budget says)
  size_t max_quantiles = 4;            // quantile examples per latent
  int before = 12, after = 4;          // context tokens kept around each example's peak
  size_t max_logit_tokens = 10;        // promoted and suppressed tokens, each
  size_t max_neighbors = 8;
};

// The SAE section of `r` (which must have r.sae). Limits applied are added to `notes`.
Section sae_section(const RunInputs& r, const SaeEmbedLimits& lim, std::vector<std::string>* notes);

// The firing-density histogram from features.json; nullopt without features.json.
std::optional<Figure> fig_sae_density(const RunInputs& r);

// The browser's compact data for `r` (see feature_browser.js for the keys); null without
// features.json.
nlohmann::json feature_browser_data(const RunInputs& r, const SaeEmbedLimits& lim, std::vector<std::string>* notes);

// CSS of the SAE section (added to the page only when a report has one).
const char* sae_section_css();

// `v` rounded to 4 significant digits (display only: the file keeps full precision).
double sig4(double v);

}  // namespace circuitlab::reports
