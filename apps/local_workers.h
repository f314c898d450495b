// Local data-parallel workers for a subcommand's --nproc N: ranks 1..N-1 are this same command
// line (read back from /proc/self/cmdline, --nproc removed) with --rank r --world-size N
// --master 127.0.0.1:<free port> --quiet appended; this process is rank 0. Not a scheduler.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

namespace circuitlab::apps {

struct LocalWorkers {
  std::string master;  // "127.0.0.1:<port>" for rank 0 and the workers
  std::vector<pid_t> pids;
  // Waits for every worker; Error naming the first that failed.
  void wait_all();
  // SIGTERM and reap (rank 0 failed: the workers would wait for it).
  void kill_all();
};

LocalWorkers spawn_local_workers(int nproc);

}  // namespace circuitlab::apps
