// analysis.json and the phase-change file as JSON (schema: ANALYSIS_JSON.md): one function per
// section, from the structs the analysis steps return. The one place these files' keys are
// spelled. Not a reader (reports/ checks and reads them) and no computation beyond rounding
// and NaN -> null.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "analysis/analyze_steps.h"
#include "analysis/phase_change.h"
#include "data/token_namer.h"

namespace circuitlab::analysis {

// A finite number, else null (NaN/Inf are never written).
nlohmann::json num(double x);
std::string now_utc();  // "2026-11-21T18:00:00Z"

nlohmann::json thresholds_json(const Thresholds& t);
// heads[]: positivities, head scores and labels, layer-major.
nlohmann::json heads_json(const std::vector<HeadPositivity>& pos, const HeadScores& hs, const Thresholds& t, int L, int H);
nlohmann::json composition_json(const CompositionResult& c);
nlohmann::json bigram_json(const BigramTable& bt, const data::TokenNamer& namer);
nlohmann::json skip_trigrams_json(const SkipTrigramResult& r, const data::TokenNamer& namer);
nlohmann::json icl_json(const IclResult& r);
nlohmann::json term_importance_json(const TermImportanceResult& r);
nlohmann::json attention_samples_json(const std::vector<AttentionSample>& samples, const data::TokenNamer& namer);
// The whole file.
nlohmann::json analysis_json(const AnalysisResult& r, const AnalyzeOptions& o, const data::TokenNamer& namer);

// The phase-change file (format circuitlab-phase-change-v1).
nlohmann::json phase_change_json(const PhaseChangeResult& r, const AnalyzeOptions& o);

}  // namespace circuitlab::analysis
