// Per-model default examples (see lab_model.h default_examples): the front end's forms are
// filled from these when a model is selected, so every panel's first run works on that model.
// Words are picked from the model's own vocabulary; the steering layer and coefficient are the
// first (in a fixed search order) whose steered generation differs from the plain one.
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <utility>

#include "analysis/steering.h"
#include "data/tokenizer.h"
#include "server/lab_model.h"

namespace circuitlab::server {

using nlohmann::json;

namespace {

// The text is exactly one GPT-2 token that the model reads and can predict.
// The model has an input id of its own for GPT-2 id g (not "other", inside d_vocab).
bool knows(const LabModel& m, int32_t g) { return m.namer->in_vocab(g) && m.namer->model_id(g) < m.cfg().d_vocab; }

bool one_known_token(const LabModel& m, const std::string& s) {
  const auto g = m.gpt2_ids(s);
  return g.size() == 1 && knows(m, g[0]) && m.namer->model_id(g[0]) < m.cfg().vocab_out();
}

bool all_known(const LabModel& m, const std::string& text) {
  for (int32_t g : m.gpt2_ids(text))
    if (!knows(m, g)) return false;
  return true;
}

bool fits(const LabModel& m, const EncodedText& e) {
  if (e.ids.size() > size_t(m.cfg().n_ctx)) return false;
  for (int64_t id : e.ids)
    if (id < 0 || id >= m.cfg().d_vocab) return false;
  return true;
}

// Two distinct in-vocabulary " word" tokens from the model's vocabulary (most frequent first
// for compact vocabularies), for models that know none of the listed pairs.
std::pair<std::string, std::string> any_two_words(const LabModel& m) {
  std::vector<std::string> found;
  const int64_t n = std::min<int64_t>(m.cfg().vocab_out(), m.loaded.vocab_map ? m.loaded.vocab_map->other_id() : 50256);
  for (int64_t id = 0; id < n && found.size() < 2; ++id) {
    const std::string s = m.namer->str(id);
    const bool word = s.size() >= 4 && s[0] == ' ' &&
                      std::all_of(s.begin() + 1, s.end(), [](unsigned char c) { return std::isalpha(c); });
    if (word && one_known_token(m, s)) found.push_back(s);
  }
  if (found.size() < 2) return {" Mary", " John"};
  return {found[0], found[1]};
}

// A pair from `pairs` both of whose words the model knows, preferring one whose whole
// `text_of(pair)` is in the vocabulary; else any two words of the vocabulary.
template <class TextOf>
std::pair<std::string, std::string> pick_pair(const LabModel& m, const std::vector<std::pair<std::string, std::string>>& pairs,
                                              TextOf text_of) {
  const std::pair<std::string, std::string>* usable = nullptr;
  for (const auto& p : pairs) {
    if (p.first == p.second || !one_known_token(m, p.first) || !one_known_token(m, p.second)) continue;
    if (all_known(m, text_of(p))) return p;
    if (!usable) usable = &p;
  }
  return usable ? *usable : any_two_words(m);
}

std::string ioi(const std::string& a, const std::string& b, const std::string& subject) {
  return "When" + a + " and" + b + " went to the store," + subject + " gave a drink to";
}

json patching_example(const LabModel& m) {
  const std::vector<std::pair<std::string, std::string>> names = {
      {" Mary", " John"}, {" John", " Mary"}, {" Alice", " Bob"}, {" Tom", " James"}, {" David", " Sarah"},
      {" Paul", " Peter"}, {" man", " woman"}, {" boy", " girl"}, {" he", " she"}, {" cat", " dog"}};
  auto [a, b] = pick_pair(m, names, [](const auto& p) { return ioi(p.first, p.second, p.second) + p.first; });
  // IOI (Wang et al. 2022): the clean prompt's repeated name is b, so the answer is a; the
  // corrupted prompt repeats a instead. Same token count, one differing position.
  return {{"clean", ioi(a, b, b)}, {"corrupted", ioi(a, b, a)}, {"answer_correct", a}, {"answer_incorrect", b},
          {"target", "resid_pre"}};
}

// Layers to try, nearest the middle of the stack first (ActAdd works best mid-depth).
std::vector<int> layer_order(int L) {
  std::vector<int> ls;
  for (int l = 0; l <= L; ++l) ls.push_back(l);
  const int mid = L >= 2 ? L / 2 : 0;
  std::stable_sort(ls.begin(), ls.end(), [mid](int x, int y) { return std::abs(x - mid) < std::abs(y - mid); });
  return ls;
}

json steering_example(LabModel& m) {
  const std::vector<std::pair<std::string, std::string>> words = {
      {" Love", " Hate"}, {" love", " hate"}, {" good", " bad"}, {" happy", " sad"}, {" peace", " war"},
      {" yes", " no"}, {" up", " down"}, {" good", " evil"}};
  auto [add, sub] = pick_pair(m, words, [](const auto& p) { return p.first + p.second; });
  const std::string prompt = "I went up to my friend and said";
  analysis::SamplingParams sp;  // the front end's defaults, sent with the example
  sp.max_new_tokens = 20;
  sp.temperature = 1.0;
  sp.top_p = 0.9;
  sp.seed = 0;
  json ex = {{"prompt", prompt}, {"prompt_add", add}, {"prompt_sub", sub}, {"max_new_tokens", sp.max_new_tokens},
             {"temperature", sp.temperature}, {"top_p", sp.top_p}, {"seed", sp.seed}};
  const int L = m.cfg().n_layers;
  ex["layer"] = std::min(1, std::max(0, L - 1));
  ex["coefficient"] = 5.0;
  ex["changes_generation"] = false;
  const auto p = m.tokenize(prompt, true), va = m.tokenize(add, true), vs = m.tokenize(sub, true);
  if (L == 0 || !fits(m, p) || !fits(m, va) || !fits(m, vs)) return ex;
  const int64_t pad = m.namer->model_id(220);  // " ", as the steer endpoint pads
  std::lock_guard<std::mutex> lk(m.mu);
  torch::NoGradGuard ng;
  const auto plain = analysis::generate(m.loaded.model, p.ids, sp);
  int tries = 0;
  for (double coef : {5.0, 10.0, 20.0, 50.0})
    for (int layer : layer_order(L)) {
      if (++tries > 16) return ex;
      auto vec = analysis::actadd_vector(m.loaded.model, va.ids, vs.ids, layer, pad);
      auto steered = analysis::generate(m.loaded.model, p.ids, sp,
                                        {{analysis::actadd_hook_name(m.cfg(), layer), analysis::steering_hook(vec, coef)}});
      if (steered != plain) {
        ex["layer"] = layer;
        ex["coefficient"] = coef;
        ex["changes_generation"] = true;
        return ex;
      }
    }
  return ex;
}

}  // namespace

json default_examples(LabModel& m) {
  json patching = patching_example(m);
  const std::string a = patching["answer_correct"];
  // The main prompt: the IOI sentence, then its start again (an induction head's repeat).
  const std::string prompt = patching["clean"].get<std::string>() + a + ". " + patching["clean"].get<std::string>();
  return {{"prompt", prompt}, {"patching", std::move(patching)}, {"steering", steering_example(m)}};
}

}  // namespace circuitlab::server
