// The one strict reader of JSON fields: every value read from a file we did not write in this
// process goes through it, so a bad field fails with one line naming the file, the field and
// what was expected. Integers are range-checked (nlohmann narrows silently, and a float out of
// range is undefined behaviour); integral floats (2.0) are accepted as integers.
// Not a schema language: callers say which fields they read and, for strict objects, which
// keys exist (the field lists of models/config.cpp and train/train_config.cpp).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace circuitlab::json_fields {

using json = nlohmann::json;

// Parses `text` as JSON; Error "<where>: not valid JSON (<parser message>)".
json parse(const std::string& text, const std::string& where);
// Reads and parses a file; Error naming the path.
json parse_file(const std::string& path);

// "<where>: field '<key>' <problem>": the one message shape of every reader below (and of
// readers that report it another way, e.g. the lab's 4xx responses).
std::string field_message(const std::string& where, const std::string& key, const std::string& problem);
// Error(field_message(...)).
[[noreturn]] void field_error(const std::string& where, const std::string& key, const std::string& problem);

namespace detail {
int64_t to_int64(const json& v, const std::string& where, const std::string& key, int64_t lo, int64_t hi,
                 const char* expected);
uint64_t to_uint64(const json& v, const std::string& where, const std::string& key, const char* expected);
}  // namespace detail

// One value `v` (the field `key` of `where`) as T: bool, a signed/unsigned integer type
// (range-checked against T and [lo, hi]), double/float (any finite number), std::string.
template <class T>
T as(const json& v, const std::string& where, const std::string& key, const char* expected = nullptr) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) field_error(where, key, "must be true or false, got " + v.dump());
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T>) {
    const uint64_t u = detail::to_uint64(v, where, key, expected ? expected : "a non-negative integer");
    if (u > std::numeric_limits<T>::max()) field_error(where, key, "is out of range, got " + v.dump());
    return static_cast<T>(u);
  } else if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(detail::to_int64(v, where, key, std::numeric_limits<T>::min(), std::numeric_limits<T>::max(),
                                           expected ? expected : "an integer"));
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) field_error(where, key, "has the wrong type (expected " + std::string(expected ? expected : "a number") + "), got " + v.dump());
    return static_cast<T>(v.get<double>());
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) field_error(where, key, "has the wrong type (expected " + std::string(expected ? expected : "a string") + "), got " + v.dump());
    return v.get<std::string>();
  } else {
    static_assert(sizeof(T) == 0, "json_fields::as: unsupported type");
  }
}

// Reader over one JSON object: required and optional fields, nested objects and arrays, and
// (finish) an Error for any key no one read or declared.
class Object {
 public:
  // Error "<where>: expected a JSON object" unless j is one. Keeps a reference to j.
  Object(const json& j, std::string where);
  Object(json&&, std::string) = delete;  // no temporaries: the reader would dangle

  const std::string& where() const { return where_; }
  const json& raw() const { return j_; }
  bool has(const std::string& key) const;            // present (null counts as present)
  bool has_value(const std::string& key) const;      // present and not null

  // Required field (absent: "is missing (expected ...)").
  template <class T>
  T req(const std::string& key, const char* expected = nullptr) {
    return as<T>(at(key, expected), where_, key, expected);
  }
  // Integer in [lo, hi].
  int64_t int_in(const std::string& key, int64_t lo, int64_t hi);
  // Optional field: absent or null keeps `out`; returns whether it was read.
  template <class T>
  bool opt(const std::string& key, T& out, const char* expected = nullptr) {
    auto it = find(key);
    if (it == j_.end() || it->is_null()) return false;
    out = as<T>(*it, where_, key, expected);
    return true;
  }
  template <class T>
  T get_or(const std::string& key, T fallback, const char* expected = nullptr) {
    opt(key, fallback, expected);
    return fallback;
  }
  // Nested object / array fields (required), as readers or the raw array.
  Object object(const std::string& key);
  const json& array(const std::string& key);
  // Optional nested: nullptr when absent or null; Error when present with another type.
  const json* opt_array(const std::string& key);
  const json* opt_object(const std::string& key);

  // Marks `key` as known without reading it (documentation keys such as "description").
  void allow(std::initializer_list<const char*> keys);
  // Error naming the first key that was neither read nor allowed.
  void finish() const;

 private:
  const json& at(const std::string& key, const char* expected);
  json::const_iterator find(const std::string& key);

  const json& j_;
  std::string where_;
  std::vector<std::string> seen_;
};

// Element i of an array field: "<where>: field '<key>[i]' ...".
inline std::string index_key(const std::string& key, size_t i) { return key + "[" + std::to_string(i) + "]"; }

}  // namespace circuitlab::json_fields
