// Strict checks of the files the report reads, against their documented schemas
// (analysis/ANALYSIS_JSON.md): analysis.json, the phase-change file and metrics.jsonl rows.
// Run once at load, so a wrong type anywhere fails with one line naming the file and the
// field ("runs/x/analysis.json: field 'heads[3].layer' has the wrong type ...") before any
// figure is drawn or any byte written. Not a reader: the report keeps reading the JSON.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace circuitlab::reports {

// analysis.json (format circuitlab-analysis-v1): "format", "config" and "heads" are required;
// every other documented section, when present, must have its documented types.
void check_analysis_json(const nlohmann::json& a, const std::string& path);
// The snapshot analysis (format circuitlab-phase-change-v1).
void check_phase_change_json(const nlohmann::json& p, const std::string& path);
// One metrics.jsonl row: the numeric fields the report reads are numbers or null.
void check_metrics_row(const nlohmann::json& row, const std::string& where);

}  // namespace circuitlab::reports
