// Small readers for analysis.json values shared by the report's sections and claims: numbers
// that may be null, token objects, head labels, number formatting. Header-only helpers.
// Not a schema validator: a missing optional field reads as "absent" (NaN / empty).
#pragma once
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

namespace circuitlab::reports {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// j[key] as a double; NaN when j is not an object, the key is absent, or the value is null.
inline double num(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return kNaN;
  auto it = j.find(key);
  return (it != j.end() && it->is_number()) ? it->get<double>() : kNaN;
}

// j[key] as an integer; `fallback` when j is not an object, the key is absent, null or not a number.
inline long long int_or(const nlohmann::json& j, const char* key, long long fallback) {
  const double v = num(j, key);
  return std::isnan(v) ? fallback : static_cast<long long>(v);
}

// j[key] when it is present and not null, else nullptr.
inline const nlohmann::json* get(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return (it != j.end() && !it->is_null()) ? &*it : nullptr;
}

// Printable string of a token object {"id","gpt2_id","str"} (or a bare string / id).
inline std::string tok(const nlohmann::json& t) {
  if (t.is_string()) return t.get<std::string>();
  if (t.is_number_integer()) return "#" + std::to_string(t.get<long long>());
  if (t.is_object()) {
    auto s = t.find("str");
    if (s != t.end() && s->is_string()) return s->get<std::string>();
    auto id = t.find("id");
    if (id != t.end() && id->is_number_integer()) return "#" + std::to_string(id->get<long long>());
  }
  return "?";
}

// Token string with whitespace made visible (leading spaces as ·, newlines as ⏎).
inline std::string tok_visible(const nlohmann::json& t) {
  std::string s = tok(t), out;
  for (char c : s) {
    if (c == ' ') out += "\xC2\xB7";
    else if (c == '\n') out += "\xE2\x8F\x8E";
    else if (c == '\t') out += "\xE2\x87\xA5";
    else out += c;
  }
  return out;
}

inline std::string head_label(int layer, int head) {
  return "L" + std::to_string(layer) + "H" + std::to_string(head);
}

inline std::string head_label(const nlohmann::json& h) {
  return head_label(h.value("layer", -1), h.value("head", -1));
}

// Fixed-point with `prec` decimals; "—" for NaN.
inline std::string fmt(double v, int prec = 3) {
  if (std::isnan(v)) return "\xE2\x80\x94";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

// Integer with thousands separators (1,234,567); "—" when negative (unknown).
inline std::string fmt_int(long long v) {
  if (v < 0) return "\xE2\x80\x94";
  std::string s = std::to_string(v), out;
  int n = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (n && n % 3 == 0) out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    ++n;
  }
  return out;
}

// Rounds for embedding in figure data (keeps the HTML small without losing what is drawn).
inline double round_to(double v, int decimals) {
  double p = std::pow(10.0, decimals);
  return std::round(v * p) / p;
}

}  // namespace circuitlab::reports
