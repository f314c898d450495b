// Unit tests of the config field lists (models/config.h, train/train_config.h): every preset
// in configs/ writes train_config.json and config.json byte-identical to the files the
// pre-refactor code wrote (tests/train/golden_configs/, recorded from commit e01a639), reads
// back to an equal struct, and every field of the list is read strictly (wrong type, unknown
// key, missing attn_only: an Error naming the field).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "core/json_fields.h"
#include "models/config.h"
#include "train/train_config.h"
#include "tests/common/paths.h"

namespace circuitlab::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using circuitlab::testing::source_dir;

std::string written(const json& j) { return j.dump(2) + "\n"; }  // as trainer.cpp / model_dir.cpp write them

TEST(ConfigFieldLists, PresetsWriteTheSameBytesAsBeforeAndReadBackEqual) {
  const std::string golden = source_dir() + "/tests/train/golden_configs";
  int compared = 0;
  for (const auto& e : fs::directory_iterator(source_dir() + "/configs")) {
    if (e.path().extension() != ".json") continue;
    const json preset = json::parse(read_file(e.path().string()));
    if (!preset.is_object() || !preset.contains("model")) continue;  // not a training preset
    const std::string name = e.path().stem().string();
    SCOPED_TRACE(name);
    const TrainConfig c = train_config_from_json(preset, e.path().string());
    const std::string tc = written(to_json(c)), mc = written(models::to_json(c.model));
    const std::string g_tc = golden + "/" + name + ".train_config.json", g_mc = golden + "/" + name + ".config.json";
    if (file_exists(g_tc)) {
      EXPECT_EQ(tc, read_file(g_tc)) << "train_config.json of preset " << name << " changed";
      EXPECT_EQ(mc, read_file(g_mc)) << "config.json of preset " << name << " changed";
      ++compared;
    }
    // What we write reads back and writes the same bytes again; from then on the struct is a
    // fixed point (the first write resolves -1 defaults such as d_vocab_out to their values).
    const TrainConfig back = train_config_from_json(json::parse(tc), "train_config.json");
    EXPECT_EQ(written(to_json(back)), tc);
    EXPECT_TRUE(back == train_config_from_json(to_json(back), "train_config.json (again)"));
    EXPECT_EQ(back.model.vocab_out(), c.model.vocab_out());
    EXPECT_EQ(back.model.init_range(), c.model.init_range());
    const models::ModelConfig mback = models::config_from_json(json::parse(mc), "config.json");
    EXPECT_EQ(written(models::to_json(mback)), mc);
  }
  EXPECT_GE(compared, 8) << "the eight presets of e01a639 must all be compared against their golden files";
}

TEST(ConfigFieldLists, EqualityCoversEveryField) {
  const TrainConfig base = train_config_from_json(load_preset_json("attn1l"), "attn1l");
  EXPECT_TRUE(base == base);
  // Changing any one written field makes the configs unequal.
  const json j = to_json(base);
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "model") continue;
    json k = j;
    if (it->is_boolean()) k[it.key()] = !it->get<bool>();
    else if (it->is_string()) k[it.key()] = it->get<std::string>() + "x";
    else if (it.key() == "min_lr") k[it.key()] = it->get<double>() / 2;
    else if (it.key() == "batch_size") k[it.key()] = 64;
    else if (it->is_number_float()) k[it.key()] = it->get<double>() == 0 ? 0.25 : it->get<double>() * 0.5;
    else k[it.key()] = it->get<int64_t>() + 1;
    TrainConfig other = train_config_from_json(k, "changed " + it.key());
    EXPECT_FALSE(other == base) << it.key();
  }
  models::ModelConfig m = base.model;
  m.tied_unembed = !m.tied_unembed;
  EXPECT_FALSE(m == base.model) << "derived fields take part in equality";
  m = base.model;
  m.normalization_type = m.has_ln() ? models::Normalization::None : models::Normalization::LN;
  EXPECT_FALSE(m == base.model);
}

void expect_error(const json& j, const std::vector<std::string>& parts) {
  try {
    train_config_from_json(j, "preset.json");
    ADD_FAILURE() << "accepted: " << j.dump();
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

TEST(ConfigFieldLists, EveryFieldIsReadStrictly) {
  const json j = to_json(train_config_from_json(load_preset_json("attn2l"), "attn2l"));
  for (auto it = j.begin(); it != j.end(); ++it) {
    json k = j;
    k[it.key()] = it->is_string() ? json(5) : json("oops");
    expect_error(k, {"preset.json", it.key()});
  }
  for (auto it = j["model"].begin(); it != j["model"].end(); ++it) {
    if (it.key() == "init_mode" || it.key() == "circuitlab") continue;  // written, not read
    json k = j;
    k["model"][it.key()] = json::array({1});
    expect_error(k, {"preset.json", it.key()});
  }
  json big = j;
  big["steps"] = 1e30;
  expect_error(big, {"steps", "out of range"});
  json neg = j;
  neg["snapshots"] = -1;
  expect_error(neg, {"snapshots", ">= 0"});
  json unknown = j;
  unknown["stepz"] = 1;
  expect_error(unknown, {"unknown field 'stepz'"});
  json no_attn = j;
  no_attn["model"].erase("attn_only");
  expect_error(no_attn, {"attn_only", "missing"});
}

TEST(JsonFields, IntegersAreRangeCheckedAndErrorsNameFileAndField) {
  const json j = {{"two", 2.0}, {"half", 2.5}, {"huge", 1e30}, {"neg", -1}, {"big", 4294967304ull}, {"text", "x"},
                  {"flag", true}, {"nothing", nullptr}};
  json_fields::Object o(j, "f.json");
  EXPECT_EQ(o.req<int>("two"), 2);  // integral floats are integers
  EXPECT_EQ(o.req<int64_t>("big"), 4294967304LL);
  EXPECT_EQ(o.req<double>("neg"), -1.0);
  auto message = [&](auto read) -> std::string {
    try {
      read();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  for (const auto& [key, m] : std::vector<std::pair<std::string, std::string>>{
           {"half", message([&] { o.req<int>("half"); })},
           {"huge", message([&] { o.req<int64_t>("huge"); })},
           {"neg", message([&] { o.req<uint64_t>("neg"); })},
           {"big", message([&] { o.req<int>("big"); })},
           {"text", message([&] { o.req<int>("text"); })},
           {"flag", message([&] { o.req<std::string>("flag"); })},
           {"missing", message([&] { o.req<bool>("missing"); })}}) {
    EXPECT_NE(m.find("f.json: field '" + key + "'"), std::string::npos) << m;
  }
  int keep = 7;
  EXPECT_FALSE(o.opt("nothing", keep));  // null keeps the default
  EXPECT_EQ(keep, 7);
  EXPECT_NO_THROW(o.finish());  // every key was read
  const json one = {{"a", 1}}, two = {{"a", 1}, {"b", 2}};  // Object keeps a reference: named values
  json_fields::Object all(one, "g.json");
  all.req<int>("a");
  EXPECT_NO_THROW(all.finish());
  json_fields::Object extra(two, "g.json");
  extra.req<int>("a");
  try {
    extra.finish();
    ADD_FAILURE() << "unknown key accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("g.json: unknown field 'b'"), std::string::npos) << e.what();
  }
  const json arr = json::array();
  EXPECT_THROW(json_fields::Object(arr, "h.json"), Error);
}

TEST(JsonFields, IntInRejectsEveryValueOutsideItsRangeWhateverItsJsonType) {
  // nlohmann parses 0 and 3 as unsigned, -1 as signed, 2.0 as a float: each kind meets the bounds.
  const json j = json::parse(R"({"zero": 0, "three": 3, "minus": -1, "two": 2.0, "nine": 9.0})");
  json_fields::Object o(j, "r.json");
  EXPECT_THROW(o.int_in("zero", 1, 5), Error);
  EXPECT_EQ(o.int_in("three", 1, 5), 3);
  EXPECT_THROW(o.int_in("minus", 0, 5), Error);
  EXPECT_EQ(o.int_in("two", 1, 5), 2);
  EXPECT_THROW(o.int_in("nine", 1, 5), Error);
  EXPECT_THROW(o.int_in("three", -5, -1), Error);
}

}  // namespace
}  // namespace circuitlab::train
