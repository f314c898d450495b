// One model as the lab holds it (see lab_model.h).
#include "server/lab_model.h"

#include <torch/torch.h>

#include <filesystem>
#include <tuple>

#include "data/tokenizer.h"
#include "server/requests.h"

namespace circuitlab::server {

namespace fs = std::filesystem;

std::vector<int32_t> LabModel::gpt2_ids(const std::string& text) const {
  std::lock_guard<std::mutex> lk(*tok_mu);
  return tok->encode(text);
}

EncodedText LabModel::tokenize(const std::string& text, bool prepend_bos) const {
  EncodedText e;
  if (prepend_bos) e.gpt2.push_back(data::kEndOfText);
  for (int32_t g : gpt2_ids(text)) e.gpt2.push_back(g);
  e.ids.reserve(e.gpt2.size());
  for (int32_t g : e.gpt2) e.ids.push_back(namer->model_id(g));
  return e;
}

EncodedText LabModel::encode(const std::string& text, bool prepend_bos) const {
  EncodedText e = tokenize(text, prepend_bos);
  const int64_t V = cfg().d_vocab;
  for (int64_t id : e.ids)
    if (id < 0 || id >= V)
      bad("token id " + std::to_string(id) + " is outside model \"" + name + "\"'s vocabulary of " +
          std::to_string(V) + " (the model has no vocab_map.json to map GPT-2 ids)");
  if (e.ids.size() > size_t(cfg().n_ctx))
    bad("prompt is " + std::to_string(e.ids.size()) + " tokens, longer than model \"" + name + "\"'s context of " +
        std::to_string(cfg().n_ctx) + " tokens");
  return e;
}

std::string LabModel::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  std::vector<int32_t> run;
  auto flush = [&] {
    if (run.empty()) return;
    std::lock_guard<std::mutex> lk(*tok_mu);
    out += tok->decode(run);
    run.clear();
  };
  for (int64_t id : ids) {
    const int32_t g = namer->gpt2_id(id);
    if (g < 0 || g >= tok->vocab_size()) {
      flush();
      out += namer->str(id);
    } else {
      run.push_back(g);
    }
  }
  flush();
  return out;
}

int64_t LabModel::answer_token(const std::string& s, const char* field) const {
  const auto g = gpt2_ids(s);
  if (g.size() != 1)
    bad(std::string("field \"") + field + "\": \"" + s + "\" must be exactly one token (it is " +
        std::to_string(g.size()) + "); mind the leading space, e.g. \" Mary\"");
  if (!namer->in_vocab(g[0]))
    bad(std::string("field \"") + field + "\": \"" + s + "\" is outside model \"" + name + "\"'s compact vocabulary");
  const int64_t id = namer->model_id(g[0]);
  if (id >= cfg().vocab_out()) bad(std::string("field \"") + field + "\": token outside the model's output vocabulary");
  return id;
}

std::unique_ptr<LabModel> load_lab_model(const std::string& dir, const std::string& name,
                                         const data::Tokenizer* default_tok, std::shared_ptr<std::mutex> default_tok_mu) {
  auto m = std::make_unique<LabModel>();
  m->name = name;
  m->loaded = models::load_model_dir(dir);
  m->loaded.model->eval();
  if (fs::exists(fs::path(dir) / "vocab.json") && fs::exists(fs::path(dir) / "merges.txt")) {
    m->own_tok = std::make_unique<data::Tokenizer>(models::load_model_tokenizer(dir));
    m->tok_mu = std::make_shared<std::mutex>();
  }
  m->tok = m->own_tok ? m->own_tok.get() : default_tok;
  if (!m->own_tok) m->tok_mu = std::move(default_tok_mu);
  m->namer = std::make_unique<data::TokenNamer>(m->tok, m->loaded.vocab_map ? &*m->loaded.vocab_map : nullptr);
  for (const auto& p : m->loaded.model->parameters()) m->n_params += p.numel();
  m->examples = default_examples(*m);
  return m;
}

bool Capability::operator<(const Capability& o) const {
  return std::tie(gpt2, has_mlp, vocab, n_params) < std::tie(o.gpt2, o.has_mlp, o.vocab, o.n_params);
}

Capability capability(const LabModel& m) {
  const auto& c = m.cfg();
  Capability k;
  k.gpt2 = c.gpt2();
  k.has_mlp = !c.attn_only && c.n_layers > 0;
  k.vocab = m.loaded.vocab_map ? m.loaded.vocab_map->size() - 1 : c.d_vocab;
  k.n_params = m.n_params;
  return k;
}

}  // namespace circuitlab::server
