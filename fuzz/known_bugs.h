// Filters for defects the fuzzers already found in code owned elsewhere (listed in the
// hardening report, inputs in fuzz/regressions/): inputs that would only re-find them are
// skipped so a run keeps exploring. CIRCUITLAB_FUZZ_KNOWN_BUGS=1 turns the filters off.
// Not a fix: the catalogue test (tests/hardening) keeps each one visible.
#pragma once
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace circuitlab::fuzz {

inline bool known_bug_filters_on() {
  static const bool on = std::getenv("CIRCUITLAB_FUZZ_KNOWN_BUGS") == nullptr;
  return on;
}

// models/config.cpp get_field<int>: nlohmann get<int>() of a JSON float outside int's range is
// undefined behaviour (UBSan float-cast-overflow), fuzz/regressions/config_float_int_overflow.json.
inline bool has_out_of_range_float(const nlohmann::json& j) {
  if (j.is_number_float()) return !(std::abs(j.get<double>()) < 2147483648.0);
  if (j.is_structured())
    for (const auto& v : j)
      if (has_out_of_range_float(v)) return true;
  return false;
}

}  // namespace circuitlab::fuzz
