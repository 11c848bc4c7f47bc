#include <malloc.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cstdlib>

#include "cli/app.h"

int main(int argc, char** argv) {
  // The process holds passwords and tokens in memory: no core file may
  // write them to disk, and non-dumpable also keeps other processes of the
  // user from attaching with ptrace or reading /proc/PID/mem.
  const rlimit no_core{0, 0};
  (void)setrlimit(RLIMIT_CORE, &no_core);
  (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  // glibc gives each thread that allocates its own arena, which keeps its
  // peak size: the loop thread plus libuv's pool threads (the disk writer
  // runs one group at a time on whichever is free) would hold one each.
  // Two serve them without contention worth measuring.
  (void)mallopt(M_ARENA_MAX, 2);
  // Credential commands and token refreshes run on libuv's pool beside the
  // disk work (a command that prompts holds its thread until answered):
  // room for both, unless the user chose a size.
  (void)setenv("UV_THREADPOOL_SIZE", "8", /*overwrite=*/0);
  return mailmirror::cli::Main(argc, argv);
}
