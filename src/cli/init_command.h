// `mailmirror init`: writes a commented configuration with one account,
// asking on a terminal for what the options leave out (never echoing the
// password), refusing to replace an existing file without --force; then
// logs in and lists the folders a sync would mirror.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "mailmirror/status.h"

namespace mailmirror::cli {

struct InitOptions {
  std::string config_path;
  std::string account = "mail";
  std::string provider;
  std::string host;
  uint16_t port = 0;  // 0: the preset's or TLS mode's default
  std::string tls;    // "", "implicit", "starttls" or "none"
  std::string ca_file;
  std::string user;
  std::string password_cmd;
  std::string oauth_client_id;
  std::string maildir;  // default ~/Mail/<account>
  bool force = false;
  bool check = true;
};

// Reads an answer from the user: `secret` answers are not echoed. Returns
// nullopt at the end of input.
using Prompt = std::function<std::optional<std::string>(const std::string& question, bool secret)>;

// The configuration text for `options` (every value known; the password
// given separately, empty when password_cmd or OAuth is used). Pure: the
// tests check it loads and says what was asked.
std::string InitConfigText(const InitOptions& options, const std::string& password);

// Runs the command: `prompt` is null when stdin is not a terminal (nothing
// is asked; missing options are usage errors). Prints to stdout; returns
// the exit status.
int RunInit(InitOptions options, const Prompt& prompt, bool quiet);

// A Prompt on the controlling terminal (stderr for questions, stdin for
// answers, echo off for secrets), or null when stdin is not a terminal.
Prompt TerminalPrompt();

}  // namespace mailmirror::cli
