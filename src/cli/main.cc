#include <malloc.h>

#include "cli/app.h"

int main(int argc, char** argv) {
  // glibc gives each thread that allocates its own arena, which keeps its
  // peak size: the loop thread plus libuv's four pool threads (the disk
  // writer runs one group at a time on whichever is free) would hold five.
  // Two serve them without contention worth measuring.
  (void)mallopt(M_ARENA_MAX, 2);
  return mailmirror::cli::Main(argc, argv);
}
