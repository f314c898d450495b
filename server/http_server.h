// The lab over HTTP: cpp-httplib serving the built front end (web/dist) and the JSON API
// (/api/models, /api/tokenize, /api/run, /api/ablate, /api/patch, /api/steer, /api/generate,
// /api/features/{tokens,page,search,clamp,ablate};
// documented in server/API.md). Not the endpoint logic (lab.h).
#pragma once
#include <cstddef>
#include <memory>
#include <string>

namespace circuitlab::server {

class Lab;

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                    // 0: any free port (see HttpServer::port())
  std::string web_dir;                // "": default_web_dir()
  size_t max_body_bytes = 1 << 20;    // larger bodies get 413
  int read_timeout_s = 10;
  int write_timeout_s = 30;
  int worker_threads = 8;             // HTTP worker threads (forward passes still serialise per model)
  bool log_requests = false;
};

// web/dist of the source tree this binary was built from; $CIRCUITLAB_WEB_DIR overrides.
std::string default_web_dir();

class HttpServer {
 public:
  HttpServer(Lab& lab, ServeOptions opts);
  ~HttpServer();
  // Binds (Error naming host:port on failure) and returns the bound port.
  int bind();
  // Serves until stop(); call after bind().
  void listen();
  void stop();
  int port() const { return port_; }
  bool serving_front_end() const { return have_web_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ServeOptions opts_;
  int port_ = -1;
  bool have_web_ = false;
};

}  // namespace circuitlab::server
