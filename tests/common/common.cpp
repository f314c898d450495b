// The shared test helpers (see paths.h, temp_dir.h, process.h, files.h).
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "tests/common/files.h"
#include "tests/common/paths.h"
#include "tests/common/process.h"
#include "tests/common/temp_dir.h"

extern char** environ;

namespace circuitlab::testing {

namespace fs = std::filesystem;

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::string source_dir() { return fs::absolute(env_or("CIRCUITLAB_SOURCE_DIR", fs::current_path().string())).string(); }

std::string circuitlab_bin() {
  return fs::absolute(env_or("CIRCUITLAB_BIN", source_dir() + "/build/apps/circuitlab")).string();
}

TempDir::TempDir(const std::string& tag) {
  const std::string tmpl = env_or("TMPDIR", "/tmp") + "/circuitlab-" + tag + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed: " + tmpl);
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(path_, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
  fs::remove_all(path_, ec);
}

namespace {
std::string slurp_and_remove(const std::string& path) {
  std::string s = slurp(path);
  ::unlink(path.c_str());
  return s;
}
}  // namespace

RunResult run_program(const std::vector<std::string>& argv, const RunOptions& opts) {
  if (argv.empty()) throw std::invalid_argument("run_program: empty argv");
  const std::string tmp = env_or("TMPDIR", "/tmp");
  std::string out_path = tmp + "/circuitlab-run-out-XXXXXX", err_path = tmp + "/circuitlab-run-err-XXXXXX";
  const int out_fd = ::mkstemp(out_path.data()), err_fd = ::mkstemp(err_path.data());
  const int in_fd = ::open(opts.stdin_file.empty() ? "/dev/null" : opts.stdin_file.c_str(), O_RDONLY);
  if (out_fd < 0 || err_fd < 0 || in_fd < 0) throw std::runtime_error("run_program: cannot open the std streams");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
  posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  posix_spawn_file_actions_adddup2(&fa, opts.merge_stderr ? out_fd : err_fd, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  if (!opts.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, opts.cwd.c_str());  // glibc >= 2.29
  const auto t0 = std::chrono::steady_clock::now();
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(in_fd);
  ::close(out_fd);
  ::close(err_fd);
  RunResult r;
  if (rc == 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  } else {
    r.exit_code = 127;
    r.err = "cannot start " + argv[0] + "\n";
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.out = slurp_and_remove(out_path);
  r.err += slurp_and_remove(err_path);
  return r;
}

RunResult run_shell(const std::string& cmd, const RunOptions& opts) { return run_program({"/bin/sh", "-c", cmd}, opts); }

int run_shell(const std::string& cmd, std::string* output) {
  RunOptions opts;
  opts.merge_stderr = true;
  RunResult r = run_shell(cmd, opts);
  if (output) *output = r.out + r.err;  // r.err: only a failure to start
  return r.exit_code;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const std::string& path, const std::string& contents) {
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    names.push_back(it->path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  if (!s.empty() && s.back() != '\n') ++n;
  return n;
}

}  // namespace circuitlab::testing
