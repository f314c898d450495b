// The schema walker of the report's input checks (analysis_schema.cpp, sae_schema.cpp): `Node`
// is one JSON object of a file at a dotted path ("heads[3]."), with typed checks of its fields
// that fail with one line naming the file and the field. Internal to reports/; not a reader.
#pragma once
#include <initializer_list>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"

namespace circuitlab::reports::schema {

using nlohmann::json;

enum Null { kNotNull, kNullable };

// One object of the file at `prefix` ("heads[3]."): typed checks of its fields.
class Node {
 public:
  Node(const json& j, const std::string& file, std::string prefix) : j_(j), file_(file), prefix_(std::move(prefix)) {
    if (!j_.is_object())
      fail(file_ + ": " + (prefix_.empty() ? std::string("expected a JSON object") : "field '" + trimmed() + "' must be an object") +
           ", got " + std::string(j_.type_name()));
  }

  void require(const char* key) const {
    if (!j_.contains(key)) json_fields::field_error(file_, prefix_ + key, "is missing");
  }
  void integer(const char* key, Null n = kNotNull) const { check(key, n, "an integer", [](const json& v) { return v.is_number_integer(); }); }
  void number(const char* key, Null n = kNullable) const { check(key, n, "a number", [](const json& v) { return v.is_number(); }); }
  void boolean(const char* key) const { check(key, kNotNull, "true or false", [](const json& v) { return v.is_boolean(); }); }
  void string(const char* key, Null n = kNotNull) const { check(key, n, "a string", [](const json& v) { return v.is_string(); }); }
  void token(const char* key, Null n = kNotNull) const {
    check(key, n, "a token object", [](const json& v) { return v.is_object() || v.is_string() || v.is_number_integer(); });
  }
  void numbers(const char* key) const {  // an object of numbers (timings_s, thresholds)
    if (const json* o = object_field(key))
      for (auto it = o->begin(); it != o->end(); ++it)
        if (!it->is_number() && !it->is_null()) bad(std::string(key) + "." + it.key(), "a number", *it);
  }
  void strings(const char* key) const {  // an array or object of strings
    const json* a = find(key);
    if (!a || a->is_null()) return;
    if (!a->is_array() && !a->is_object()) bad(key, "an array of strings", *a);
    for (auto it = a->begin(); it != a->end(); ++it)
      if (!it->is_string()) bad(std::string(key) + (a->is_array() ? "[]" : "." + it.key()), "a string", *it);
  }
  // Nested object (nullptr when absent or null).
  const json* object_field(const char* key, Null n = kNullable) const {
    const json* v = find(key);
    if (!v || (v->is_null() && n == kNullable)) return nullptr;
    if (!v->is_object()) bad(key, "an object", *v);
    return v;
  }
  // Each element of an array field checked as an object by `each(Node)`.
  template <class F>
  void objects(const char* key, F each, Null n = kNullable) const {
    const json* a = find(key);
    if (!a || (a->is_null() && n == kNullable)) return;
    if (!a->is_array()) bad(key, "an array", *a);
    for (size_t i = 0; i < a->size(); ++i) each(Node((*a)[i], file_, prefix_ + key + "[" + std::to_string(i) + "]."));
  }
  template <class F>
  void child(const char* key, F each, Null n = kNullable) const {
    if (const json* o = object_field(key, n)) each(Node(*o, file_, prefix_ + key + "."));
  }
  // Nested arrays of numbers, `depth` levels deep (patterns, composition tensors).
  void number_array(const char* key, int depth) const {
    const json* a = find(key);
    if (!a || a->is_null()) return;
    walk(*a, depth, prefix_ + key);
  }
  // An array of integers (counts, ids); each element checked.
  void integer_array(const char* key, Null n = kNotNull) const {
    const json* a = find(key);
    if (!a || (a->is_null() && n == kNullable)) return;
    if (!a->is_array()) bad(key, "an array of integers", *a);
    for (size_t i = 0; i < a->size(); ++i)
      if (!(*a)[i].is_number_integer()) bad(std::string(key) + "[" + std::to_string(i) + "]", "an integer", (*a)[i]);
  }
  // Each listed key must be present.
  void require_all(std::initializer_list<const char*> keys) const {
    for (const char* k : keys) require(k);
  }
  // A semantic problem with a field of this object ("must have as many entries as ...").
  [[noreturn]] void invalid(const std::string& key, const std::string& problem) const {
    json_fields::field_error(file_, prefix_ + key, problem);
  }
  const json& raw() const { return j_; }
  void token_array(const char* key) const {
    const json* a = find(key);
    if (!a || a->is_null()) return;
    if (!a->is_array()) bad(key, "an array of tokens", *a);
    for (size_t i = 0; i < a->size(); ++i) {
      const json& t = (*a)[i];
      if (!t.is_object() && !t.is_string() && !t.is_number_integer())
        bad(std::string(key) + "[" + std::to_string(i) + "]", "a token object", t);
    }
  }

 private:
  const json* find(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  template <class P>
  void check(const char* key, Null n, const char* expected, P ok) const {
    const json* v = find(key);
    if (!v) return;
    if (v->is_null() && n == kNullable) return;
    if (!ok(*v)) bad(key, std::string(expected) + (n == kNullable ? " or null" : ""), *v);
  }
  [[noreturn]] void bad(const std::string& key, const std::string& expected, const json& v) const {
    std::string got = v.dump();
    if (got.size() > 40) got = got.substr(0, 37) + "...";
    json_fields::field_error(file_, prefix_ + key, "has the wrong type (expected " + expected + "), got " + got);
  }
  void walk(const json& v, int depth, const std::string& path) const {
    if (depth == 0) {
      if (!v.is_number() && !v.is_null())
        json_fields::field_error(file_, path, "has the wrong type (expected a number), got " + v.dump().substr(0, 40));
      return;
    }
    if (!v.is_array()) json_fields::field_error(file_, path, "has the wrong type (expected an array), got " + std::string(v.type_name()));
    for (size_t i = 0; i < v.size(); ++i) walk(v[i], depth - 1, path + "[" + std::to_string(i) + "]");
  }
  std::string trimmed() const { return prefix_.empty() ? prefix_ : prefix_.substr(0, prefix_.size() - 1); }

  const json& j_;
  const std::string& file_;
  std::string prefix_;
};

}  // namespace circuitlab::reports::schema
