// The strict JSON field reader (see json_fields.h).
#include "core/json_fields.h"

#include <algorithm>
#include <cmath>

#include "core/file_io.h"

namespace circuitlab::json_fields {

json parse(const std::string& text, const std::string& where) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(where + ": not valid JSON (" + e.what() + ")");
  }
}

json parse_file(const std::string& path) { return parse(read_file(path), path); }

std::string field_message(const std::string& where, const std::string& key, const std::string& problem) {
  return where + ": field '" + key + "' " + problem;
}

void field_error(const std::string& where, const std::string& key, const std::string& problem) {
  fail(field_message(where, key, problem));
}

namespace detail {

int64_t to_int64(const json& v, const std::string& where, const std::string& key, int64_t lo, int64_t hi,
                 const char* expected) {
  const auto out_of_range = [&] {
    field_error(where, key, "is out of range or not an integer (expected " + std::string(expected) + " in [" +
                                std::to_string(lo) + ", " + std::to_string(hi) + "]), got " + v.dump());
  };
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();  // 0 parses as unsigned: lo > 0 must reject it too
    if ((hi < 0 || u > static_cast<uint64_t>(hi)) || static_cast<int64_t>(u) < lo) out_of_range();
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i < lo || i > hi) out_of_range();
    return i;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    // 2^63 is exactly representable; anything at or above it does not fit an int64.
    if (!std::isfinite(d) || d != std::floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
      out_of_range();
    const auto i = static_cast<int64_t>(d);
    if (i < lo || i > hi) out_of_range();
    return i;
  }
  field_error(where, key, "has the wrong type (expected " + std::string(expected) + "), got " + v.dump());
}

uint64_t to_uint64(const json& v, const std::string& where, const std::string& key, const char* expected) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  if (v.is_number_integer() || v.is_number_float()) {
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && d >= 0 && d < 18446744073709551616.0) return static_cast<uint64_t>(d);
    }
    field_error(where, key, "is out of range or not an integer (expected " + std::string(expected) + "), got " + v.dump());
  }
  field_error(where, key, "has the wrong type (expected " + std::string(expected) + "), got " + v.dump());
}

}  // namespace detail

Object::Object(const json& j, std::string where) : j_(j), where_(std::move(where)) {
  if (!j_.is_object()) fail(where_ + ": expected a JSON object, got " + std::string(j_.type_name()));
}

bool Object::has(const std::string& key) const { return j_.find(key) != j_.end(); }

bool Object::has_value(const std::string& key) const {
  auto it = j_.find(key);
  return it != j_.end() && !it->is_null();
}

json::const_iterator Object::find(const std::string& key) {
  if (std::find(seen_.begin(), seen_.end(), key) == seen_.end()) seen_.push_back(key);
  return j_.find(key);
}

const json& Object::at(const std::string& key, const char* expected) {
  auto it = find(key);
  if (it == j_.end())
    field_error(where_, key, "is missing" + (expected ? " (expected " + std::string(expected) + ")" : std::string()));
  return *it;
}

int64_t Object::int_in(const std::string& key, int64_t lo, int64_t hi) {
  return detail::to_int64(at(key, "an integer"), where_, key, lo, hi, "an integer");
}

Object Object::object(const std::string& key) {
  const json& v = at(key, "an object");
  if (!v.is_object()) field_error(where_, key, "has the wrong type (expected an object), got " + std::string(v.type_name()));
  return Object(v, where_ + " [" + key + "]");
}

const json& Object::array(const std::string& key) {
  const json& v = at(key, "an array");
  if (!v.is_array()) field_error(where_, key, "has the wrong type (expected an array), got " + std::string(v.type_name()));
  return v;
}

const json* Object::opt_array(const std::string& key) {
  auto it = find(key);
  if (it == j_.end() || it->is_null()) return nullptr;
  if (!it->is_array()) field_error(where_, key, "has the wrong type (expected an array), got " + std::string(it->type_name()));
  return &*it;
}

const json* Object::opt_object(const std::string& key) {
  auto it = find(key);
  if (it == j_.end() || it->is_null()) return nullptr;
  if (!it->is_object()) field_error(where_, key, "has the wrong type (expected an object), got " + std::string(it->type_name()));
  return &*it;
}

void Object::allow(std::initializer_list<const char*> keys) {
  for (const char* k : keys) find(k);
}

void Object::finish() const {
  for (auto it = j_.begin(); it != j_.end(); ++it)
    if (std::find(seen_.begin(), seen_.end(), it.key()) == seen_.end())
      fail(where_ + ": unknown field '" + it.key() + "'");
}

}  // namespace circuitlab::json_fields
