// The command line: parses arguments, runs one subcommand, and maps its
// outcome to a sysexits(3) exit code.
#pragma once

namespace mailmirror::cli {

int Main(int argc, char** argv);

}  // namespace mailmirror::cli
