// Downloading a pretrained GPT-2 from the Hugging Face hub layout
// <base>/<name>/resolve/main/<file> into a model directory: config.json, model.safetensors,
// vocab.json, merges.txt. Resumable (<file>.part + HTTP Range), sizes checked against the
// server's Content-Length/Content-Range, each file renamed into place only when complete.
// Not a general HTTP client; no authentication (the GPT-2 repos are public). Lives in apps/:
// only the command line fetches over HTTP (the model layer reads what this writes).
#pragma once
#include <string>
#include <vector>

namespace circuitlab::apps {

struct FetchOptions {
  std::string base_url = "https://huggingface.co";
  std::string out_dir;      // default: models/<name>
  bool progress = true;
  int timeout_s = 60;       // connect/read timeout
};

// Known names: gpt2, gpt2-medium, gpt2-large, gpt2-xl (the hub also serves them as
// openai-community/<name>). Returns the model directory. Error naming the URL/file on failure.
std::string fetch_gpt2(const std::string& name, const FetchOptions& opts);

const std::vector<std::string>& gpt2_fetch_files();  // the four files, in download order

}  // namespace circuitlab::apps
