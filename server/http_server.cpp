// HTTP wiring for the lab (see http_server.h): JSON in, JSON out, {"error": "..."} with a 4xx
// on client mistakes, 500 with the message on anything else; the server keeps serving either way.
#include "server/http_server.h"

#include <c10/util/Exception.h>
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "server/lab.h"

#ifndef CIRCUITLAB_WEB_DIST_DIR
#define CIRCUITLAB_WEB_DIST_DIR ""
#endif

namespace circuitlab::server {

using nlohmann::json;

std::string default_web_dir() {
  if (const char* e = std::getenv("CIRCUITLAB_WEB_DIR"); e && *e) return e;
  return CIRCUITLAB_WEB_DIST_DIR;
}

struct HttpServer::Impl {
  httplib::Server svr;
};

namespace {

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& msg) {
  send_json(res, status, json{{"error", msg}, {"status", status}});
}

const char* kNoFrontEnd =
    "<!doctype html><meta charset=utf-8><title>circuitlab lab</title>"
    "<h1>circuitlab lab</h1><p>The front end is not built. Build it with <code>./run build</code> "
    "(or <code>scripts/dev-build circuitlab_web</code>), or point <code>--web-dir</code> at a built "
    "<code>web/dist</code>. The JSON API is up at <code>/api/models</code>.</p>";

}  // namespace

HttpServer::HttpServer(Lab& lab, ServeOptions opts) : impl_(std::make_unique<Impl>()), opts_(std::move(opts)) {
  auto& svr = impl_->svr;
  const int workers = std::max(1, opts_.worker_threads);
  svr.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  svr.set_payload_max_length(opts_.max_body_bytes);
  svr.set_read_timeout(opts_.read_timeout_s, 0);
  svr.set_write_timeout(opts_.write_timeout_s, 0);
  svr.set_keep_alive_max_count(1000);
  // Small JSON replies on keep-alive connections: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms.
  svr.set_tcp_nodelay(true);

  const std::string web = opts_.web_dir.empty() ? default_web_dir() : opts_.web_dir;
  have_web_ = !web.empty() && std::filesystem::exists(std::filesystem::path(web) / "index.html");
  if (have_web_) {
    svr.set_mount_point("/", web);
  } else {
    svr.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_content(kNoFrontEnd, "text/html"); });
  }

  const bool log = opts_.log_requests;
  auto api = [&lab, log](const std::string& endpoint) {
    return [&lab, log, endpoint](const httplib::Request& req, httplib::Response& res) {
      const auto t0 = std::chrono::steady_clock::now();
      json body = json::object();
      if (req.method == "POST") {
        if (req.body.empty()) {
          send_error(res, 400, "request body: expected a JSON object, got nothing");
          return;
        }
        body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
        if (body.is_discarded()) {
          send_error(res, 400, "request body: malformed JSON");
          return;
        }
      }
      try {
        send_json(res, 200, lab.handle(endpoint, body));
      } catch (const BadRequest& e) {
        send_error(res, e.status(), e.what());
      } catch (const c10::Error& e) {
        std::string msg = e.what_without_backtrace();
        msg = msg.substr(0, msg.find('\n'));
        send_error(res, 500, "internal error: " + msg);
      } catch (const std::exception& e) {
        send_error(res, 500, std::string("internal error: ") + e.what());
      }
      if (log) {
        const double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        std::fprintf(stderr, "%s /api/%s %d %.1f ms\n", req.method.c_str(), endpoint.c_str(), res.status, ms);
      }
    };
  };
  svr.Get("/api/models", api("models"));
  for (const char* ep : {"tokenize", "run", "ablate", "patch", "steer", "generate", "features/tokens", "features/page",
                         "features/search", "features/clamp", "features/ablate"})
    svr.Post(std::string("/api/") + ep, api(ep));
  svr.Get("/api/health", [](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, json{{"ok", true}});
  });

  // Requests httplib rejects itself (413 oversize, 404 unknown path, 400 unparsable) get a message.
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string msg;
    switch (res.status) {
      case 413: msg = "request body too large"; break;
      case 404: msg = "no such path: " + req.path; break;
      case 405: msg = "method not allowed for " + req.path; break;
      default: msg = "bad request";
    }
    send_error(res, res.status, msg);
  });
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  auto& svr = impl_->svr;
  if (opts_.port == 0) {
    port_ = svr.bind_to_any_port(opts_.host);
  } else {
    port_ = svr.bind_to_port(opts_.host, opts_.port) ? opts_.port : -1;
  }
  if (port_ < 0) fail("serve: cannot listen on " + opts_.host + ":" + std::to_string(opts_.port) + " (in use or not permitted)");
  return port_;
}

void HttpServer::listen() { impl_->svr.listen_after_bind(); }

void HttpServer::stop() {
  if (impl_) impl_->svr.stop();
}

}  // namespace circuitlab::server
