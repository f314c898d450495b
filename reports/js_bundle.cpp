// Finding/building the report's JS bundles and running the SVG exporter (see js_bundle.h).
#include "reports/js_bundle.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "core/error.h"
#include "core/file_io.h"

extern char** environ;

namespace circuitlab::reports {

namespace {

#ifndef CIRCUITLAB_REPORT_JS_DIR
#define CIRCUITLAB_REPORT_JS_DIR ""
#endif
#ifndef CIRCUITLAB_SOURCE_DIR
#define CIRCUITLAB_SOURCE_DIR "."
#endif

constexpr const char* kRuntime = "report_runtime.js";
constexpr const char* kExport = "report_export_svg.mjs";

bool bundle_in(const std::string& dir, JsBundle* out) {
  if (dir.empty()) return false;
  JsBundle b{dir + "/" + kRuntime, dir + "/" + kExport};
  if (!file_exists(b.runtime_js) || !file_exists(b.export_svg)) return false;
  *out = b;
  return true;
}

std::string source_root() {
  const char* env = std::getenv("CIRCUITLAB_SOURCE_DIR");
  return env && *env ? env : CIRCUITLAB_SOURCE_DIR;
}

}  // namespace

int run_process(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

JsBundle find_or_build_bundle(const std::string& scratch_dir) {
  JsBundle b;
  const char* env = std::getenv("CIRCUITLAB_REPORT_JS_DIR");
  if (env && bundle_in(env, &b)) return b;
  if (bundle_in(CIRCUITLAB_REPORT_JS_DIR, &b)) return b;
  if (bundle_in(scratch_dir, &b)) return b;

  // Not built by CMake (e.g. configured before `npm ci`): bundle now from node_modules.
  const std::string root = source_root();
  const std::string esbuild = root + "/node_modules/.bin/esbuild";
  if (!file_exists(esbuild))
    fail(esbuild + ": missing, so the report's figure runtime cannot be bundled (run `./run setup`)");
  make_dirs(scratch_dir);
  b = JsBundle{scratch_dir + "/" + kRuntime, scratch_dir + "/" + kExport};
  int rc = run_process({esbuild, root + "/reports/js/runtime.js", "--bundle", "--minify",
                        "--format=iife", "--target=es2020", "--log-level=warning",
                        "--outfile=" + b.runtime_js});
  if (rc != 0) fail(root + "/reports/js/runtime.js: esbuild failed (exit " + std::to_string(rc) + ")");
  rc = run_process({esbuild, root + "/reports/js/export_svg.mjs", "--bundle", "--minify",
                    "--platform=node", "--format=esm", "--external:canvas", "--log-level=warning",
                    "--outfile=" + b.export_svg});
  if (rc != 0) fail(root + "/reports/js/export_svg.mjs: esbuild failed (exit " + std::to_string(rc) + ")");
  return b;
}

void run_svg_export(const JsBundle& bundle, const std::string& specs_json, const std::string& out_dir) {
  int rc = run_process({"node", bundle.export_svg, specs_json, out_dir});
  if (rc == -1) fail("node: not found on PATH; it renders the SVG figures (run `./run setup`, or skip them: `no_svg`)");
  if (rc != 0) fail(specs_json + ": SVG export failed (node exit " + std::to_string(rc) + ")");
}

}  // namespace circuitlab::reports
