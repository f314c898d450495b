// Subcommands of the server layer (see apps/commands.h): `serve`, the interactive lab.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "apps/commands.h"
#include "core/error.h"
#include "core/file_io.h"
#include "server/http_server.h"
#include "server/lab.h"

namespace circuitlab::apps {

namespace {
// --sae DIR or DIR@MODEL: the model part only when DIR itself is not a directory.
std::pair<std::string, std::string> sae_spec(const std::string& spec) {
  const auto at = spec.rfind('@');
  if (at == std::string::npos || std::filesystem::is_directory(spec)) return {spec, ""};
  return {spec.substr(0, at), spec.substr(at + 1)};
}

server::HttpServer* g_server = nullptr;
void on_signal(int) {
  if (g_server) g_server->stop();
}
}  // namespace

void register_server_commands(CLI::App& app) {
  struct Opts {
    std::vector<std::string> models;
    std::vector<std::string> saes;
    bool no_default_saes = false;
    std::string runs = "runs";
    std::string host = "127.0.0.1";
    int port = 8080;
    int threads = 0;
    int workers = 8;
    std::string web_dir;
    std::string port_file;
    size_t max_body = 1 << 20;
    bool log = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("serve",
                                 "Serve the interactive lab (attention, residual stream, ablation, patching, steering, "
                                 "SAE features) over HTTP");
  cmd->add_option("--model", o->models,
                  "Model dir to load (repeatable; toy or Hugging Face GPT-2 layout). Default: every runs/*/model");
  cmd->add_option("--sae", o->saes,
                  "SAE dir to serve (repeatable; SAELens layout, + features.json for feature pages and search). "
                  "It serves the loaded model whose hook it reads; DIR@MODEL names the model when several fit. "
                  "Default: the SAEs beside the models (<runs>/<model>/sae)");
  cmd->add_flag("--no-default-saes", o->no_default_saes, "Do not load the SAEs found beside the models");
  cmd->add_option("--runs", o->runs, "Where to look for the demo's models when no --model is given")
      ->capture_default_str();
  cmd->add_option("--host", o->host, "Address to bind (loopback unless you mean to expose it)")->capture_default_str();
  cmd->add_option("--port", o->port, "TCP port (0: any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
  cmd->add_option("--threads", o->threads, "LibTorch intra-op threads (0: keep the default)")->check(CLI::Range(0, 256));
  cmd->add_option("--workers", o->workers, "HTTP worker threads")->capture_default_str()->check(CLI::Range(1, 256));
  cmd->add_option("--web-dir", o->web_dir, "Built front end to serve (default: web/dist of this source tree)");
  cmd->add_option("--port-file", o->port_file, "Write the bound port to this file once listening");
  cmd->add_option("--max-body", o->max_body, "Largest request body in bytes (larger: 413)")->capture_default_str();
  cmd->add_flag("--log", o->log, "Log each API request with its status and latency to stderr");
  cmd->callback([o] {
    set_threads(o->threads);
    server::Lab lab;
    if (o->models.empty()) {
      auto names = lab.add_default_models(o->runs);
      if (names.empty())
        std::fprintf(stderr,
                     "circuitlab serve: no model under %s/*/model; train the demo models with `./run demo`, get GPT-2 "
                     "with `./run fetch-gpt2`, or pass --model DIR. Serving the page anyway.\n",
                     o->runs.c_str());
    } else {
      for (const auto& d : o->models) lab.add_model(d);
    }
    if (!o->no_default_saes) lab.add_default_saes();
    for (const auto& spec : o->saes) {
      const auto [dir, model] = sae_spec(spec);
      lab.add_sae(dir, model);
    }
    auto models = lab.models();
    for (const auto& m : models["models"]) {
      std::fprintf(stderr, "circuitlab serve: model %s (%s, %d layers x %d heads) from %s\n",
                   m["name"].get<std::string>().c_str(), m["family"].get<std::string>().c_str(), m["n_layers"].get<int>(),
                   m["n_heads"].get<int>(), m["dir"].get<std::string>().c_str());
      for (const auto& s : m["saes"])
        std::fprintf(stderr, "circuitlab serve:   SAE %s (%s, %lld latents at %s)%s from %s\n",
                     s["name"].get<std::string>().c_str(), s["architecture"].get<std::string>().c_str(),
                     static_cast<long long>(s["d_sae"].get<int64_t>()), s["hook"].get<std::string>().c_str(),
                     s["has_features"].get<bool>() ? " with features.json" : ", no features.json",
                     s["dir"].get<std::string>().c_str());
    }
    server::ServeOptions so;
    so.host = o->host;
    so.port = o->port;
    so.web_dir = o->web_dir;
    so.max_body_bytes = o->max_body;
    so.worker_threads = o->workers;
    so.log_requests = o->log;
    server::HttpServer http(lab, so);
    const int port = http.bind();
    if (!http.serving_front_end())
      std::fprintf(stderr, "circuitlab serve: front end not built (%s/index.html missing); serving the API only\n",
                   (o->web_dir.empty() ? server::default_web_dir() : o->web_dir).c_str());
    if (!o->port_file.empty()) write_file_atomic(o->port_file, std::to_string(port) + "\n");
    std::fprintf(stderr, "circuitlab serve: lab at http://%s:%d/ (Ctrl-C stops)\n", o->host.c_str(), port);
    g_server = &http;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    http.listen();
    g_server = nullptr;
  });
}

}  // namespace circuitlab::apps
