// Local data-parallel workers (see local_workers.h).
#include "apps/local_workers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "core/file_io.h"

extern char** environ;

namespace circuitlab::apps {

namespace {

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("--nproc: cannot open a socket to find a free port");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    fail("--nproc: cannot bind a loopback port");
  }
  const int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

}  // namespace

LocalWorkers spawn_local_workers(int nproc) {
  LocalWorkers w;
  w.master = "127.0.0.1:" + std::to_string(free_loopback_port());
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) fail("--nproc: cannot find the circuitlab binary (/proc/self/exe)");
  const std::string exe(buf, static_cast<size_t>(n));
  // This process's arguments, without --nproc N / --nproc=N.
  const std::string cmdline = read_file("/proc/self/cmdline");
  std::vector<std::string> args;
  for (size_t p = 0; p < cmdline.size();) {
    const size_t z = cmdline.find('\0', p);
    args.push_back(cmdline.substr(p, z == std::string::npos ? std::string::npos : z - p));
    if (z == std::string::npos) break;
    p = z + 1;
  }
  std::vector<std::string> base = {exe};
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--nproc") {
      ++i;
      continue;
    }
    if (args[i].rfind("--nproc=", 0) == 0) continue;
    base.push_back(args[i]);
  }
  for (int r = 1; r < nproc; ++r) {
    std::vector<std::string> a = base;
    a.insert(a.end(), {"--rank", std::to_string(r), "--world-size", std::to_string(nproc), "--master", w.master, "--quiet"});
    std::vector<char*> argv;
    for (auto& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    pid_t pid;
    if (::posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
      w.kill_all();
      fail("--nproc: cannot spawn worker rank " + std::to_string(r));
    }
    w.pids.push_back(pid);
  }
  return w;
}

void LocalWorkers::wait_all() {
  std::string failed;
  for (size_t i = 0; i < pids.size(); ++i) {
    int status = 0;
    ::waitpid(pids[i], &status, 0);
    if ((!WIFEXITED(status) || WEXITSTATUS(status) != 0) && failed.empty())
      failed = "--nproc: worker rank " + std::to_string(i + 1) + " failed (status " + std::to_string(status) + ")";
  }
  pids.clear();
  if (!failed.empty()) fail(failed);
}

void LocalWorkers::kill_all() {
  for (pid_t p : pids) ::kill(p, SIGTERM);
  for (pid_t p : pids) ::waitpid(p, nullptr, 0);
  pids.clear();
}

}  // namespace circuitlab::apps
