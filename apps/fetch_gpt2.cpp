// fetch-gpt2: cpp-httplib client (Debian builds it with OpenSSL, so https works; when a build
// lacks CPPHTTPLIB_OPENSSL_SUPPORT, https URLs go through the `curl` program instead, started
// with an argument vector: no shell ever sees the URL or the path).
#include "apps/fetch_gpt2.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <httplib.h>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "core/progress.h"
#include "models/config.h"
#include "models/safetensors.h"

namespace circuitlab::apps {

const std::vector<std::string>& gpt2_fetch_files() {
  static const std::vector<std::string> files = {"config.json", "vocab.json", "merges.txt", "model.safetensors"};
  return files;
}

namespace {

struct Url {
  std::string scheme_host;  // "http://127.0.0.1:8080"
  std::string path;         // "/gpt2/resolve/main/config.json"
};

Url split_url(const std::string& url) {
  auto p = url.find("://");
  if (p == std::string::npos) fail("--base-url '" + url + "': expected http://host[:port][/path] or https://...");
  auto slash = url.find('/', p + 3);
  if (slash == std::string::npos) return {url, "/"};
  return {url.substr(0, slash), url.substr(slash)};
}

int64_t file_size_or(const std::string& path, int64_t fallback) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : fallback;
}

void fsync_rename(const std::string& from, const std::string& to) {
  FILE* f = std::fopen(from.c_str(), "rb+");
  if (f) {
    ::fsync(fileno(f));
    std::fclose(f);
  }
  if (std::rename(from.c_str(), to.c_str()) != 0) fail(to + ": cannot rename " + from + " into place");
}

// Parses the total from "bytes a-b/total"; -1 when absent.
int64_t content_range_total(const std::string& v) {
  auto s = v.find('/');
  if (s == std::string::npos || v.substr(s + 1) == "*") return -1;
  return std::stoll(v.substr(s + 1));
}

#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
// https without OpenSSL in httplib: hand the download to curl (resumes with -C -), as an argv
// through fork/execvp, so quotes or `$(...)` in a URL or path are just bytes.
void curl_download(const std::string& url, const std::string& part) {
  std::vector<std::string> args = {"curl", "-fL", "--retry", "3", "-C", "-", "-o", part, "--", url};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) fail(url + ": cannot start curl (fork failed)");
  if (pid == 0) {
    ::execvp("curl", argv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) == 127)
    fail(url + ": https needs curl (this build's cpp-httplib has no OpenSSL) and curl could not be run");
  if (WEXITSTATUS(status) != 0)
    fail(url + ": curl failed with exit code " + std::to_string(WEXITSTATUS(status)) + " (partial file kept at " +
         part + " for resuming)");
}
#endif

// Downloads url into `final_path` through `final_path + ".part"`; returns bytes.
int64_t download(const std::string& url, const std::string& final_path, const FetchOptions& opts) {
  const std::string part = final_path + ".part";
  Url u = split_url(url);
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
  if (u.scheme_host.rfind("https://", 0) == 0) {
    curl_download(url, part);
    int64_t n = file_size_or(part, 0);
    fsync_rename(part, final_path);
    return n;
  }
#endif
  httplib::Client cli(u.scheme_host);
  cli.set_follow_location(true);
  cli.set_connection_timeout(opts.timeout_s, 0);
  cli.set_read_timeout(opts.timeout_s, 0);

  // Expected size first (HEAD follows the hub's redirect to the file store).
  int64_t expected = -1;
  if (auto head = cli.Head(u.path.c_str()); head && head->status == 200 && head->has_header("Content-Length"))
    expected = std::stoll(head->get_header_value("Content-Length"));
  else if (head && head->status == 404)
    fail(url + ": not found (HTTP 404)");

  if (expected >= 0 && file_size_or(final_path, -1) == expected) return expected;  // already complete

  int64_t have = file_size_or(part, 0);
  if (expected >= 0 && have > expected) {
    std::remove(part.c_str());
    have = 0;
  }
  if (expected >= 0 && have == expected) {
    fsync_rename(part, final_path);
    return expected;
  }

  httplib::Headers headers;
  if (have > 0) headers.emplace("Range", "bytes=" + std::to_string(have) + "-");
  FILE* out = nullptr;
  int64_t written = have;
  int status = 0;
  std::unique_ptr<ProgressBar> bar;
  auto res = cli.Get(
      u.path.c_str(), headers,
      [&](const httplib::Response& r) {
        status = r.status;
        if (r.status == 206 && have > 0) {
          out = std::fopen(part.c_str(), "ab");
          if (r.has_header("Content-Range")) {
            int64_t total = content_range_total(r.get_header_value("Content-Range"));
            if (total >= 0) expected = total;
          }
        } else if (r.status == 200) {
          have = 0;
          written = 0;
          out = std::fopen(part.c_str(), "wb");
          if (r.has_header("Content-Length")) {
            int64_t n = std::stoll(r.get_header_value("Content-Length"));
            if (expected >= 0 && n != expected)
              return false;  // HEAD and GET disagree: refuse rather than guess
            expected = n;
          }
        } else {
          return false;
        }
        if (!out) return false;
        if (opts.progress && expected > (1 << 20))
          bar = std::make_unique<ProgressBar>(final_path.substr(final_path.rfind('/') + 1), expected / 1e6, "MB");
        return true;
      },
      [&](const char* data, size_t n) {
        if (std::fwrite(data, 1, n, out) != n) return false;
        written += static_cast<int64_t>(n);
        if (bar) bar->update(written / 1e6);
        return true;
      });
  if (out) std::fclose(out);
  if (bar) bar->finish();
  if (status == 416 && expected >= 0 && have == expected) {
    fsync_rename(part, final_path);
    return expected;
  }
  if (!res) {
    if (status != 0 && status != 200 && status != 206)
      fail(url + ": HTTP " + std::to_string(status) + (status == 404 ? " (not found)" : ""));
    fail(url + ": download failed (" + httplib::to_string(res.error()) + "); " + std::to_string(written) +
         " bytes kept in " + part + ", run again to resume");
  }
  if (status != 200 && status != 206) fail(url + ": HTTP " + std::to_string(status));
  const int64_t got = file_size_or(part, 0);
  if (expected >= 0 && got != expected)
    fail(url + ": size mismatch, got " + std::to_string(got) + " bytes, expected " + std::to_string(expected) +
         " (kept in " + part + ", run again to resume)");
  fsync_rename(part, final_path);
  return got;
}

}  // namespace

std::string fetch_gpt2(const std::string& name, const FetchOptions& opts) {
  static const std::vector<std::string> known = {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"};
  bool ok = false;
  for (const auto& k : known) ok = ok || name == k || name == "openai-community/" + k;
  if (!ok) fail("fetch-gpt2: unknown model '" + name + "' (expected gpt2, gpt2-medium, gpt2-large or gpt2-xl)");
  std::string short_name = name.substr(name.rfind('/') + 1);
  std::string dir = opts.out_dir.empty() ? "models/" + short_name : opts.out_dir;
  make_dirs(dir);
  std::string base = opts.base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  for (const auto& file : gpt2_fetch_files()) {
    const std::string url = base + "/" + name + "/resolve/main/" + file;
    const std::string path = dir + "/" + file;
    int64_t n = download(url, path, opts);
    if (opts.progress) std::fprintf(stderr, "fetch-gpt2: %s (%lld bytes)\n", path.c_str(), static_cast<long long>(n));
  }
  // The files must make a model directory we can open.
  try {
    models::config_from_json(nlohmann::json::parse(read_file(dir + "/config.json")), dir + "/config.json");
  } catch (const nlohmann::json::exception& e) {
    fail(dir + "/config.json: downloaded file is not valid JSON (" + std::string(e.what()) + ")");
  }
  models::SafetensorsFile::open(dir + "/model.safetensors");
  return dir;
}

}  // namespace circuitlab::apps
