// One SAE as the lab holds it (see lab_sae.h): loading, the features.json check, feature search.
#include "server/lab_sae.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/error.h"
#include "core/json_fields.h"

namespace circuitlab::server {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// Whether one of the label's parts (peak tokens split by " / ", the promoted token after " → "),
// trimmed, is exactly `q`.
bool label_has_part(const std::string& label, const std::string& q) {
  std::string l = label;
  for (const std::string sep : {" / ", " \xe2\x86\x92 "})
    for (size_t at = l.find(sep); at != std::string::npos; at = l.find(sep)) l.replace(at, sep.size(), "\x1f");
  size_t start = 0;
  for (size_t end = 0; end <= l.size(); ++end)
    if (end == l.size() || l[end] == '\x1f') {
      if (trim(l.substr(start, end - start)) == q) return true;
      start = end + 1;
    }
  return false;
}

[[noreturn]] void bad_file(const std::string& path, const std::string& key, const std::string& problem) {
  json_fields::field_error(path, key, problem);
}

// The fields of one latent the lab reads, checked; its search texts.
SaeFeatures::SearchText check_latent(const std::string& path, const json& l, size_t i) {
  const std::string key = json_fields::index_key("latents", i);
  if (!l.is_object()) bad_file(path, key, "must be an object");
  if (json_fields::as<int64_t>(l.value("index", json()), path, key + ".index") != int64_t(i))
    bad_file(path, key + ".index", "must be " + std::to_string(i) + " (latents in index order)");
  SaeFeatures::SearchText t;
  t.label = lower(json_fields::as<std::string>(l.value("label", json()), path, key + ".label"));
  for (const char* arr : {"top", "quantiles", "promoted", "suppressed", "neighbors"})
    if (!l.contains(arr) || !l[arr].is_array()) bad_file(path, key + "." + arr, "must be an array");
  for (const char* num : {"density", "fired", "max"})
    if (!l.contains(num) || !l[num].is_number()) bad_file(path, key + "." + num, "must be a number");
  for (size_t e = 0; e < l["top"].size(); ++e) {
    const json& ex = l["top"][e];
    const std::string ek = key + ".top[" + std::to_string(e) + "]";
    if (!ex.is_object() || !ex.contains("strs") || !ex["strs"].is_array() || !ex.contains("acts") ||
        !ex["acts"].is_array() || ex["strs"].size() != ex["acts"].size())
      bad_file(path, ek, "must have arrays strs and acts of one length");
    const int64_t peak = json_fields::as<int64_t>(ex.value("peak", json()), path, ek + ".peak");
    if (peak < 0 || peak >= int64_t(ex["strs"].size())) bad_file(path, ek + ".peak", "is outside strs");
    for (size_t s = 0; s < ex["strs"].size(); ++s) {
      const std::string str = lower(json_fields::as<std::string>(ex["strs"][s], path, ek + ".strs"));
      if (int64_t(s) == peak) t.peaks.push_back(str);
      t.context += str + "\n";
    }
  }
  for (const auto& p : l["promoted"]) t.promoted.push_back(lower(json_fields::as<std::string>(p.value("str", json()), path, key + ".promoted.str")));
  return t;
}

}  // namespace

SaeFeatures load_sae_features(const std::string& path, const models::SaeConfig& cfg) {
  SaeFeatures f;
  f.path = path;
  f.doc = json_fields::parse_file(path);
  const json& d = f.doc;
  if (!d.is_object()) fail(path + ": expected a JSON object");
  if (d.value("format", "") != "circuitlab-sae-features-v1")
    bad_file(path, "format", "must be \"circuitlab-sae-features-v1\", got " + d.value("format", json()).dump());
  const json& s = d.contains("sae") ? d["sae"] : json();
  if (!s.is_object()) bad_file(path, "sae", "must be an object");
  if (json_fields::as<int64_t>(s.value("d_sae", json()), path, "sae.d_sae") != cfg.d_sae)
    bad_file(path, "sae.d_sae", "is " + s["d_sae"].dump() + " but the SAE beside it has d_sae " + std::to_string(cfg.d_sae));
  if (json_fields::as<std::string>(s.value("hook_name", json()), path, "sae.hook_name") != cfg.hook_name)
    bad_file(path, "sae.hook_name", "is " + s["hook_name"].dump() + " but the SAE beside it reads " + cfg.hook_name);
  if (!d.contains("latents") || !d["latents"].is_array() || d["latents"].size() != size_t(cfg.d_sae))
    bad_file(path, "latents", "must be an array of d_sae = " + std::to_string(cfg.d_sae) + " entries");
  for (const char* k : {"histogram_bins", "density_histogram", "summary", "data"})
    if (!d.contains(k) || !d[k].is_object()) bad_file(path, k, "must be an object");
  f.search.reserve(cfg.d_sae);
  for (size_t i = 0; i < d["latents"].size(); ++i) f.search.push_back(check_latent(path, d["latents"][i], i));
  return f;
}

std::string LabSae::label(int64_t i) const {
  return features ? features->latent(i)["label"].get<std::string>() : std::string();
}

std::unique_ptr<LabSae> load_lab_sae(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  auto s = std::unique_ptr<LabSae>(new LabSae{p.filename().string(), dir, "", models::load_sae(dir), std::nullopt});
  const auto fj = p / "features.json";
  if (fs::exists(fj)) s->features = load_sae_features(fj.string(), s->sae.cfg);
  return s;
}

// Score: 4 when the label contains the query (+2 when a " / "-part of it is the query), up to 3
// for the promoted tokens (3 for the strongest, less further down), up to 3 for the share of
// top examples whose peak token contains it, 0.5 when only other context tokens do. Ties: the
// larger max activation, then the lower index.
std::vector<FeatureHit> search_features(const SaeFeatures& f, const std::string& query_in, int limit) {
  const std::string q = lower(trim(query_in));
  std::vector<FeatureHit> hits;
  if (q.empty()) return hits;
  for (size_t i = 0; i < f.search.size(); ++i) {
    const auto& t = f.search[i];
    if (t.label == "dead") continue;
    FeatureHit h;
    h.index = static_cast<int64_t>(i);
    if (t.label.find(q) != std::string::npos) {
      h.score += 4;
      if (label_has_part(t.label, q)) h.score += 2;
      h.matched.push_back("label");
    }
    int peaks = 0;
    for (const auto& p : t.peaks) peaks += p.find(q) != std::string::npos;
    if (peaks > 0) {
      h.score += 3.0 * peaks / double(t.peaks.size());
      h.matched.push_back("top examples");
    } else if (t.context.find(q) != std::string::npos) {
      h.score += 0.5;
      h.matched.push_back("top examples");
    }
    for (size_t r = 0; r < t.promoted.size(); ++r)
      if (t.promoted[r].find(q) != std::string::npos) {
        h.score += 3.0 / double(1 + r);
        h.matched.push_back("promoted");
        break;
      }
    if (h.score > 0) hits.push_back(std::move(h));
  }
  const json& lat = f.doc["latents"];
  std::sort(hits.begin(), hits.end(), [&](const FeatureHit& a, const FeatureHit& b) {
    if (a.score != b.score) return a.score > b.score;
    const double ma = lat[size_t(a.index)]["max"].get<double>(), mb = lat[size_t(b.index)]["max"].get<double>();
    return ma != mb ? ma > mb : a.index < b.index;
  });
  if (hits.size() > size_t(std::max(limit, 0))) hits.resize(size_t(std::max(limit, 0)));
  return hits;
}

}  // namespace circuitlab::server
