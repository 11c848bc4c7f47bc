#include "cli/app.h"

int main(int argc, char** argv) { return mailmirror::cli::Main(argc, argv); }
