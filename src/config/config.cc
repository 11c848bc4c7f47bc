#include "mailmirror/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

// toml++ 3.3 (Debian 12) marks "impossible" branches with
// __builtin_unreachable(), and some non-ASCII input reaches one (see
// CheckConfigText): undefined behaviour. Its preprocessor header is
// #pragma once, so redefining the macro after it and before the rest makes
// such a branch abort instead.
#include <toml++/impl/preprocessor.h>
#undef TOML_UNREACHABLE
#define TOML_UNREACHABLE ::abort()
#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "util/fs.h"

namespace mailmirror {
namespace {

constexpr const char* kAccountKeys[] = {
    "provider",
    "host",
    "port",
    "tls",
    "ca_file",
    "tls_fingerprint",
    "user",
    "password",
    "password_cmd",
    "auth",
    "oauth_token_cmd",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scope",
    "oauth_device_url",
    "oauth_token_url",
    "maildir",
    "layout",
    "state_dir",
    "folders",
    "connect_timeout",
    "timeout",
    "min_rate",
    "connections",
    "compress",
    "direction",
    "expunge",
    "create",
    "max_delete_fraction",
    "retries",
    "retry_delay",
    "max_retry_wait",
    "max_upload_size",
    "gmail_labels",
    "gmail_all_mail",
};

std::string KnownKeysList() {
  std::string out;
  for (const char* key : kAccountKeys) {
    if (!out.empty()) out += ", ";
    out += key;
  }
  return out;
}

// Collects the context every error message needs: file, line and key path.
class Validator {
 public:
  explicit Validator(const std::string& path) : path_(path) {}

  Error At(const toml::source_region& where, const std::string& key,
           const std::string& what) const {
    std::string message = path_;
    if (where.begin.line > 0) {
      message += ':';
      message += std::to_string(where.begin.line);
    }
    message += ": ";
    if (!key.empty()) message += key + ": ";
    message += what;
    return MakeError(ErrorKind::kConfig, message);
  }

 private:
  const std::string& path_;
};

// A string key with a fixed set of values.
template <typename T>
struct Choice {
  const char* name;
  T value;
};

template <typename T, size_t N>
Result<T> PickChoice(const Validator& v, const toml::node& node, const std::string& key_path,
                     const std::string& value, const Choice<T> (&choices)[N]) {
  std::string expected;
  for (size_t i = 0; i < N; ++i) {
    if (value == choices[i].name) return choices[i].value;
    if (i > 0) expected += i + 1 == N ? " or " : ", ";
    expected += std::string("\"") + choices[i].name + "\"";
  }
  return v.At(node.source(), key_path, "expected " + expected + ", got \"" + value + "\"");
}

constexpr Choice<CompressMode> kCompressChoices[] = {
    {"auto", CompressMode::kAuto}, {"yes", CompressMode::kYes}, {"no", CompressMode::kNo}};
constexpr Choice<TlsMode> kTlsChoices[] = {
    {"implicit", TlsMode::kImplicit}, {"starttls", TlsMode::kStartTls}, {"none", TlsMode::kNone}};
constexpr Choice<AuthMechanism> kAuthChoices[] = {{"auto", AuthMechanism::kAuto},
                                                  {"plain", AuthMechanism::kPlain},
                                                  {"login", AuthMechanism::kLogin},
                                                  {"xoauth2", AuthMechanism::kXoauth2},
                                                  {"oauthbearer", AuthMechanism::kOauthBearer}};
constexpr Choice<SyncDirection> kDirectionChoices[] = {
    {"both", SyncDirection::kBoth}, {"pull", SyncDirection::kPull}, {"push", SyncDirection::kPush}};
constexpr Choice<Sides> kSidesChoices[] = {{"both", Sides::kBoth},
                                           {"remote", Sides::kRemote},
                                           {"local", Sides::kLocal},
                                           {"none", Sides::kNone}};

std::string ExpandHome(const std::string& path) {
  if (path == "~" || path.rfind("~/", 0) == 0) {
    const char* home = std::getenv("HOME");
    if (home != nullptr && *home != '\0') return std::string(home) + path.substr(1);
  }
  return path;
}

// `path` absolute with symbolic links followed as far as it exists; the
// path itself when that fails (a permission error, say).
std::string ResolvePath(const std::string& path) {
  std::error_code error;
  std::filesystem::path absolute = std::filesystem::absolute(path, error);
  if (error) return path;
  std::filesystem::path resolved = std::filesystem::weakly_canonical(absolute, error);
  return error ? path : NormalPath(resolved.string());
}

// "localhost", 127.0.0.0/8 or ::1 (bracketed or not): where tls = "none"
// sends nothing over a network.
bool IsLoopbackHost(std::string host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::string lower = host;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "localhost" || lower == "localhost.") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
  }
  return false;
}

bool IsValidAccountName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return name != "." && name != "..";
}

Result<std::string> GetString(const Validator& v, const toml::node& node, const std::string& key) {
  if (const auto* value = node.as_string()) return value->get();
  return v.At(node.source(), key, "expected a string in double quotes");
}

Result<int64_t> GetInteger(const Validator& v, const toml::node& node, const std::string& key,
                           int64_t min, int64_t max) {
  const auto* value = node.as_integer();
  if (value == nullptr || value->get() < min || value->get() > max) {
    return v.At(node.source(), key,
                "expected an integer from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return value->get();
}

// "AB:CD:..." or "abcd..." (an optional "SHA256:" or "sha256 Fingerprint="
// prefix) as 32 bytes; nullopt unless exactly 64 hex digits.
std::optional<std::string> ParseSha256Fingerprint(std::string_view text) {
  for (std::string_view prefix : {"sha256 fingerprint=", "sha256:"}) {
    if (text.size() >= prefix.size()) {
      std::string head(text.substr(0, prefix.size()));
      std::transform(head.begin(), head.end(), head.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (head == prefix) text.remove_prefix(prefix.size());
    }
  }
  std::string digits;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (std::isxdigit(static_cast<unsigned char>(c)) != 0) {
      digits += c;
    } else if (c != ':' || digits.size() % 2 != 0 || i + 1 == text.size()) {
      return std::nullopt;
    }
  }
  if (digits.size() != 64) return std::nullopt;
  std::string bytes;
  for (size_t i = 0; i < digits.size(); i += 2) {
    bytes += static_cast<char>(std::stoi(digits.substr(i, 2), nullptr, 16));
  }
  return bytes;
}

// An integer or a floating-point number within [min, max]; NaN is refused.
Result<double> GetNumber(const Validator& v, const toml::node& node, const std::string& key,
                         double min, double max, const char* example) {
  const auto* floating = node.as_floating_point();
  const auto* integer = node.as_integer();
  double value = floating != nullptr  ? floating->get()
                 : integer != nullptr ? static_cast<double>(integer->get())
                                      : std::nan("");
  if (!(value >= min && value <= max)) {
    auto text = [](double number) {
      std::string out = std::to_string(number);
      out.erase(out.find_last_not_of('0') + 1);
      if (out.back() == '.') out.pop_back();
      return out;
    };
    return v.At(node.source(), key,
                "expected a number from " + text(min) + " to " + text(max) + ", e.g. " + example);
  }
  return value;
}

// Applies one key of an [accounts.NAME] table to `account`.
Status ApplyAccountKey(const Validator& v, const std::string& key_path, std::string_view key,
                       const toml::node& node, AccountConfig& account,
                       std::optional<uint16_t>& explicit_port) {
  if (key == "folders") {
    const toml::array* patterns = node.as_array();
    if (patterns == nullptr) {
      return v.At(node.source(), key_path, "expected a list of strings, e.g. [\"*\", \"!Trash\"]");
    }
    for (const toml::node& pattern : *patterns) {
      Result<std::string> value = GetString(v, pattern, key_path);
      if (!value) return value.error();
      if (value->empty() || *value == "!") {
        return v.At(pattern.source(), key_path, "empty folder pattern");
      }
      account.folders.push_back(*value);
    }
    return Status::Ok();
  }
  if (key == "host" || key == "user" || key == "password" || key == "password_cmd" ||
      key == "ca_file" || key == "maildir" || key == "tls" || key == "layout" ||
      key == "state_dir" || key == "compress" || key == "direction" || key == "expunge" ||
      key == "create") {
    Result<std::string> value = GetString(v, node, key_path);
    if (!value) return value.error();
    if (value->empty() && key != "password") {
      return v.At(node.source(), key_path, "must not be empty");
    }
    if (key == "host") account.host = *value;
    if (key == "user") account.user = *value;
    if (key == "password") account.password = *value;
    if (key == "password_cmd") account.password_cmd = *value;
    if (key == "ca_file") account.ca_file = NormalPath(ExpandHome(*value));
    if (key == "maildir") account.maildir = NormalPath(ExpandHome(*value));
    if (key == "state_dir") account.state_dir = NormalPath(ExpandHome(*value));
    if (key == "layout") {
      if (*value != "verbatim" && *value != "maildir++") {
        return v.At(node.source(), key_path,
                    "expected \"verbatim\" or \"maildir++\", got \"" + *value + "\"");
      }
      account.layout = *value;
    }
    if (key == "compress") {
      Result<CompressMode> mode = PickChoice(v, node, key_path, *value, kCompressChoices);
      if (!mode) return mode.error();
      account.compress = *mode;
    }
    if (key == "tls") {
      Result<TlsMode> mode = PickChoice(v, node, key_path, *value, kTlsChoices);
      if (!mode) return mode.error();
      account.tls = *mode;
    }
    if (key == "direction") {
      Result<SyncDirection> direction = PickChoice(v, node, key_path, *value, kDirectionChoices);
      if (!direction) return direction.error();
      account.direction = *direction;
    }
    if (key == "expunge" || key == "create") {
      Result<Sides> sides = PickChoice(v, node, key_path, *value, kSidesChoices);
      if (!sides) return sides.error();
      (key == "expunge" ? account.expunge : account.create) = *sides;
    }
    return Status::Ok();
  }
  if (key == "max_upload_size") {
    Result<double> megabytes = GetNumber(v, node, key_path, 0, 1 << 20, "35");
    if (!megabytes) return megabytes.error();
    account.max_upload_bytes = static_cast<uint64_t>(*megabytes * 1000 * 1000);
    return Status::Ok();
  }
  if (key == "gmail_labels") {
    Result<std::string> value = GetString(v, node, key_path);
    if (!value) return value.error();
    if (*value != "link" && *value != "copy") {
      return v.At(node.source(), key_path, "expected \"link\" or \"copy\", got \"" + *value + "\"");
    }
    account.gmail_link_labels = *value == "link";
    return Status::Ok();
  }
  if (key == "gmail_all_mail") {
    const auto* value = node.as_boolean();
    if (value == nullptr) return v.At(node.source(), key_path, "expected true or false");
    account.gmail_all_mail = value->get();
    return Status::Ok();
  }
  if (key == "auth") {
    Result<std::string> value = GetString(v, node, key_path);
    if (!value) return value.error();
    Result<AuthMechanism> mechanism = PickChoice(v, node, key_path, *value, kAuthChoices);
    if (!mechanism) return mechanism.error();
    account.auth = *mechanism;
    return Status::Ok();
  }
  if (key.rfind("oauth_", 0) == 0) {
    Result<std::string> value = GetString(v, node, key_path);
    if (!value) return value.error();
    if (value->empty() && key != "oauth_client_secret") {
      return v.At(node.source(), key_path, "must not be empty");
    }
    if ((key == "oauth_device_url" || key == "oauth_token_url") &&
        value->rfind("https://", 0) != 0) {
      return v.At(node.source(), key_path,
                  "expected an https:// URL (tokens are never sent unencrypted)");
    }
    if (key == "oauth_token_cmd") account.oauth_token_cmd = *value;
    if (key == "oauth_client_id") account.oauth.client_id = *value;
    if (key == "oauth_client_secret") account.oauth_client_secret = *value;
    if (key == "oauth_scope") account.oauth.scope = *value;
    if (key == "oauth_device_url") account.oauth.device_authorization_url = *value;
    if (key == "oauth_token_url") account.oauth.token_url = *value;
    return Status::Ok();
  }
  if (key == "tls_fingerprint") {
    Result<std::string> value = GetString(v, node, key_path);
    if (!value) return value.error();
    std::optional<std::string> digest = ParseSha256Fingerprint(*value);
    if (!digest) {
      return v.At(node.source(), key_path,
                  "expected a SHA-256 fingerprint: 64 hex digits, pairs may be separated by "
                  "':' (as openssl x509 -noout -fingerprint -sha256 prints it)");
    }
    account.tls_fingerprint = *digest;
    return Status::Ok();
  }
  if (key == "port") {
    Result<int64_t> port = GetInteger(v, node, key_path, 1, 65535);
    if (!port) return port.error();
    explicit_port = static_cast<uint16_t>(*port);
    return Status::Ok();
  }
  if (key == "connect_timeout" || key == "timeout") {
    Result<int64_t> seconds = GetInteger(v, node, key_path, 1, 86400);
    if (!seconds) return seconds.error();
    (key == "timeout" ? account.timeout_seconds : account.connect_timeout_seconds) =
        static_cast<uint32_t>(*seconds);
    return Status::Ok();
  }
  if (key == "min_rate") {
    Result<int64_t> rate = GetInteger(v, node, key_path, 0, 1 << 30);
    if (!rate) return rate.error();
    account.min_rate = static_cast<uint32_t>(*rate);
    return Status::Ok();
  }
  if (key == "max_delete_fraction") {
    Result<double> fraction = GetNumber(v, node, key_path, 0, 1, "0.5");
    if (!fraction) return fraction.error();
    account.max_delete_fraction = *fraction;
    return Status::Ok();
  }
  if (key == "retries") {
    Result<int64_t> count = GetInteger(v, node, key_path, 0, 100);
    if (!count) return count.error();
    account.retries = static_cast<uint32_t>(*count);
    return Status::Ok();
  }
  if (key == "retry_delay" || key == "max_retry_wait") {
    Result<double> seconds = GetNumber(v, node, key_path, 0, 86400, "1.5");
    if (!seconds) return seconds.error();
    (key == "retry_delay" ? account.retry_delay_seconds : account.max_retry_wait_seconds) =
        *seconds;
    return Status::Ok();
  }
  if (key == "connections") {
    // More than a server's usual per-user limit (Dovecot: 10, Gmail: 15)
    // would only be refused.
    Result<int64_t> count = GetInteger(v, node, key_path, 1, 16);
    if (!count) return count.error();
    account.connections = static_cast<uint32_t>(*count);
    return Status::Ok();
  }
  return v.At(node.source(), key_path, "unknown key (known keys: " + KnownKeysList() + ")");
}

// Whether the account holds what its `auth` needs: a password for PLAIN and
// LOGIN, a token source for the OAuth mechanisms, either for "auto".
Status CheckCredentials(const Validator& v, const toml::node& node, const std::string& prefix,
                        const toml::table& table, const AccountConfig& account) {
  const bool password = table.contains("password") || table.contains("password_cmd");
  const bool token = HasTokenSource(account);
  const std::string token_hint =
      "set oauth_token_cmd (a command printing an access token), or oauth_client_id and run "
      "`mailmirror auth " +
      account.name + "`";
  switch (account.auth) {
    case AuthMechanism::kPlain:
    case AuthMechanism::kLogin:
      if (!password) {
        return v.At(node.source(), prefix,
                    std::string("auth = \"") + AuthMechanismName(account.auth) +
                        "\" needs key \"password\" or \"password_cmd\"");
      }
      break;
    case AuthMechanism::kXoauth2:
    case AuthMechanism::kOauthBearer:
      if (!token) {
        std::string what = account.provider.empty()
                               ? std::string("auth = \"") + AuthMechanismName(account.auth) + "\""
                               : "provider \"" + account.provider + "\"";
        return v.At(node.source(), prefix,
                    what + " logs in with an OAuth 2.0 access token: " + token_hint);
      }
      break;
    case AuthMechanism::kAuto:
      if (!password && !token) {
        return v.At(
            node.source(), prefix,
            "missing key \"password\" or \"password_cmd\" (or, for OAuth 2.0, " + token_hint + ")");
      }
      break;
  }
  return Status::Ok();
}

Result<AccountConfig> ParseAccount(const Validator& v, std::string_view name,
                                   const toml::node& node) {
  const std::string prefix = "accounts." + std::string(name);
  const toml::table* table = node.as_table();
  if (table == nullptr) {
    return v.At(node.source(), prefix, "expected a table: [" + prefix + "]");
  }
  if (!IsValidAccountName(name)) {
    return v.At(node.source(), prefix,
                "account names may use only letters, digits, '.', '-' and '_'");
  }
  AccountConfig account;
  account.name = std::string(name);
  // The preset first, so that every key set explicitly overrides it.
  std::optional<uint16_t> preset_port;
  if (const toml::node* provider_node = table->get("provider")) {
    Result<std::string> provider_name = GetString(v, *provider_node, prefix + ".provider");
    if (!provider_name) return provider_name.error();
    const Provider* provider = FindProvider(*provider_name);
    if (provider == nullptr) {
      std::string known;
      for (const Provider& each : Providers())
        known += std::string(known.empty() ? "" : ", ") + "\"" + each.name + "\"";
      return v.At(provider_node->source(), prefix + ".provider",
                  "unknown provider \"" + *provider_name + "\" (known: " + known +
                      "; `mailmirror providers` lists their settings)");
    }
    account.provider = provider->name;
    account.host = provider->host;
    account.tls = TlsMode::kImplicit;
    preset_port = provider->port;
    account.auth = provider->auth;
    account.oauth = provider->oauth;
    account.max_upload_bytes = uint64_t(provider->max_upload_mb) * 1000 * 1000;
  }
  std::optional<uint16_t> explicit_port;
  for (const auto& [key, value] : *table) {
    if (key.str() == "provider") continue;
    Status applied = ApplyAccountKey(v, prefix + "." + std::string(key.str()), key.str(), value,
                                     account, explicit_port);
    if (!applied) return applied.error();
  }
  if (account.host.empty()) return v.At(node.source(), prefix, "missing key \"host\"");
  if (account.user.empty()) return v.At(node.source(), prefix, "missing key \"user\"");
  if (table->contains("password") && table->contains("password_cmd")) {
    return v.At(node.source(), prefix, "set either \"password\" or \"password_cmd\", not both");
  }
  Status credentials = CheckCredentials(v, node, prefix, *table, account);
  if (!credentials) return credentials.error();
  // A preset's port holds for the preset's TLS mode only.
  const bool tls_overridden = table->contains("tls") && account.tls != TlsMode::kImplicit;
  account.port = explicit_port.value_or(preset_port && !tls_overridden      ? *preset_port
                                        : account.tls == TlsMode::kImplicit ? 993
                                                                            : 143);
  if (account.tls == TlsMode::kNone) {
    for (const char* key : {"ca_file", "tls_fingerprint"}) {
      if (const toml::node* set = table->get(key)) {
        return v.At(set->source(), prefix + "." + key,
                    std::string(key) +
                        " has no effect with tls = \"none\": the connection would not be "
                        "encrypted");
      }
    }
  }
  if (account.state_dir.empty() && !account.maildir.empty()) {
    account.state_dir = NormalPath(account.maildir + "/.mailmirror");
  }
  return account;
}

// A date bound of a migration: a TOML date (2015-01-31) or the same as a
// string, as seconds since the epoch at its UTC midnight.
Result<int64_t> GetDate(const Validator& v, const toml::node& node, const std::string& key) {
  int year = 0;
  int month = 0;
  int day = 0;
  if (const auto* date = node.as_date()) {
    year = date->get().year;
    month = date->get().month;
    day = date->get().day;
  } else if (const auto* text = node.as_string()) {
    char extra = 0;
    if (std::sscanf(text->get().c_str(), "%4d-%2d-%2d%c", &year, &month, &day, &extra) != 3) {
      year = 0;
    }
  }
  struct tm when {};
  when.tm_year = year - 1900;
  when.tm_mon = month - 1;
  when.tm_mday = day;
  const time_t seconds = year >= 1970 && year <= 9999 ? timegm(&when) : -1;
  // 1970-01-01 itself would read as "no bound".
  if (seconds <= 0 || when.tm_mday != day || when.tm_mon != month - 1) {
    return v.At(node.source(), key, "expected a date after 1970-01-01, e.g. 2015-01-31");
  }
  return static_cast<int64_t>(seconds);
}

// A list of non-empty strings.
Result<std::vector<std::string>> GetStringList(const Validator& v, const toml::node& node,
                                               const std::string& key, const char* example) {
  const toml::array* items = node.as_array();
  if (items == nullptr) {
    return v.At(node.source(), key, std::string("expected a list of strings, e.g. ") + example);
  }
  std::vector<std::string> out;
  for (const toml::node& item : *items) {
    Result<std::string> value = GetString(v, item, key);
    if (!value) return value.error();
    if (value->empty() || *value == "!") return v.At(item.source(), key, "empty string");
    out.push_back(*value);
  }
  return out;
}

// A map rule's side: a name, or a prefix ending in "*" ("Old/*", "*").
bool IsPrefixPattern(std::string_view name) { return !name.empty() && name.back() == '*'; }

Status CheckFolderRule(const Validator& v, const toml::node& node, const std::string& key,
                       const FolderRule& rule) {
  auto valid = [](std::string_view name) {
    if (name.empty()) return false;
    const size_t star = name.find('*');
    if (star == std::string_view::npos) return name.front() != '/' && name.back() != '/';
    // Only a final "*", after "/" or alone.
    return star + 1 == name.size() && (star == 0 || name[star - 1] == '/') && name.front() != '/';
  };
  if (!valid(rule.from) || !valid(rule.to)) {
    return v.At(node.source(), key,
                "expected \"Folder\" = \"New name\" or a prefix move such as \"Archive/*\" = "
                "\"Old/Archive/*\" ('*' only at the end, after '/')");
  }
  if (IsPrefixPattern(rule.from) != IsPrefixPattern(rule.to)) {
    return v.At(node.source(), key, "a prefix move needs '*' at the end of both names");
  }
  return Status::Ok();
}

Result<MigrationConfig> ParseMigration(const Validator& v, std::string_view name,
                                       const toml::node& node) {
  const std::string prefix = "migrations." + std::string(name);
  const toml::table* table = node.as_table();
  if (table == nullptr) return v.At(node.source(), prefix, "expected a table: [" + prefix + "]");
  if (!IsValidAccountName(name)) {
    return v.At(node.source(), prefix,
                "migration names may use only letters, digits, '.', '-' and '_'");
  }
  MigrationConfig migration;
  migration.name = std::string(name);
  for (const auto& [key_name, value] : *table) {
    const std::string key(key_name.str());
    std::string key_path = prefix;
    key_path += "." + key;
    if (key == "source" || key == "target") {
      Result<std::string> account = GetString(v, value, key_path);
      if (!account) return account.error();
      (key == "source" ? migration.source : migration.target) = *account;
    } else if (key == "folders" || key == "skip_flags") {
      Result<std::vector<std::string>> list = GetStringList(
          v, value, key_path, key == "folders" ? "[\"*\", \"!Junk\"]" : "[\"\\\\Deleted\"]");
      if (!list) return list.error();
      (key == "folders" ? migration.folders : migration.skip_flags) = std::move(*list);
    } else if (key == "since" || key == "before") {
      Result<int64_t> date = GetDate(v, value, key_path);
      if (!date) return date.error();
      (key == "since" ? migration.since : migration.before) = *date;
    } else if (key == "max_size") {
      Result<double> megabytes = GetNumber(v, value, key_path, 0, 1 << 20, "35");
      if (!megabytes) return megabytes.error();
      migration.max_bytes = static_cast<uint64_t>(*megabytes * 1000 * 1000);
    } else if (key == "special_use") {
      const auto* flag = value.as_boolean();
      if (flag == nullptr) return v.At(value.source(), key_path, "expected true or false");
      migration.special_use = flag->get();
    } else if (key == "connections") {
      Result<int64_t> count = GetInteger(v, value, key_path, 1, 64);
      if (!count) return count.error();
      migration.connections = static_cast<uint32_t>(*count);
    } else if (key == "map") {
      const toml::table* rules = value.as_table();
      if (rules == nullptr) {
        return v.At(value.source(), key_path,
                    "expected a table: [" + key_path +
                        "] with lines such as \"Sent Messages\" = "
                        "\"Sent Items\"");
      }
      if (rules->is_inline()) {
        // Its rules share a line, so their order would be lost.
        return v.At(
            value.source(), key_path,
            "write the rules one per line under [" + key_path + "], not as an inline table");
      }
      // toml++ keeps tables sorted by key; the rules apply in file order.
      std::vector<std::pair<uint32_t, FolderRule>> by_line;
      for (const auto& [from, to_node] : *rules) {
        Result<std::string> to = GetString(v, to_node, key_path + "." + std::string(from.str()));
        if (!to) return to.error();
        FolderRule rule{std::string(from.str()), *to};
        Status checked = CheckFolderRule(v, to_node, key_path + "." + rule.from, rule);
        if (!checked) return checked.error();
        by_line.emplace_back(to_node.source().begin.line, std::move(rule));
      }
      std::stable_sort(by_line.begin(), by_line.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      for (auto& [line, rule] : by_line) migration.map.push_back(std::move(rule));
    } else {
      return v.At(value.source(), key_path,
                  "unknown key (known keys: source, target, folders, map, special_use, since, "
                  "before, max_size, skip_flags, connections)");
    }
  }
  if (migration.source.empty()) return v.At(node.source(), prefix, "missing key \"source\"");
  if (migration.target.empty()) return v.At(node.source(), prefix, "missing key \"target\"");
  if (migration.since != 0 && migration.before != 0 && migration.before <= migration.since) {
    return v.At(node.source(), prefix, "\"before\" must be later than \"since\"");
  }
  return migration;
}

}  // namespace

std::string DefaultConfigPath() {
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  if (xdg != nullptr && *xdg == '/') return std::string(xdg) + "/mailmirror/config.toml";
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "") + "/.config/mailmirror/config.toml";
}

namespace {

// A line holding non-ASCII text must be `key = "string"` (or an array of
// one-line strings) or an ASCII table header, optionally with a comment,
// or a comment alone: the
// shapes toml++ reads without looking at non-ASCII characters outside
// strings. Returns whether `line` is such a line.
bool IsPlainValueLine(std::string_view line) {
  size_t i = 0;
  auto blanks = [&] {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
  };
  auto string = [&] {
    if (i >= line.size() || (line[i] != '"' && line[i] != '\'')) return false;
    const char quote = line[i++];
    while (i < line.size() && line[i] != quote) {
      if (quote == '"' && line[i] == '\\') ++i;
      ++i;
    }
    if (i >= line.size()) return false;
    ++i;
    // A third quote in a row opens a multi-line string: not here.
    return !(i < line.size() && line[i] == quote);
  };
  blanks();
  if (i == line.size() || line[i] == '#') return true;
  if (line[i] == '[') {  // a table header, ASCII only, then maybe a comment
    while (i < line.size() && line[i] != ']' && static_cast<unsigned char>(line[i]) < 0x80) ++i;
    if (i >= line.size() || line[i] != ']') return false;
    ++i;
    if (i < line.size() && line[i] == ']') ++i;
    blanks();
    return i == line.size() || line[i] == '#';
  }
  const size_t key = i;
  if (line[i] == '"' || line[i] == '\'') {
    // A quoted key, as [migrations.NAME.map] folder names are.
    if (!string()) return false;
  } else {
    while (i < line.size() && static_cast<unsigned char>(line[i]) < 0x80 &&
           (std::isalnum(static_cast<unsigned char>(line[i])) != 0 || line[i] == '_' ||
            line[i] == '-')) {
      ++i;
    }
  }
  if (i == key) return false;
  blanks();
  if (i >= line.size() || line[i++] != '=') return false;
  blanks();
  if (i < line.size() && line[i] == '[') {
    ++i;
    blanks();
    while (i < line.size() && line[i] != ']') {
      if (!string()) return false;
      blanks();
      if (i < line.size() && line[i] == ',') ++i;
      blanks();
    }
    if (i >= line.size()) return false;
    ++i;
  } else if (!string()) {
    return false;
  }
  blanks();
  return i == line.size() || line[i] == '#';
}

// TOML allows control characters other than tab and line ends nowhere, and
// non-ASCII text only in strings and comments. toml++ 3.3 (Debian 12)
// reaches __builtin_unreachable() when it checks a non-ASCII character for
// whitespace outside a string (a Cyrillic letter in a table name, found by
// tests/fuzz/config_fuzz.cc), which is undefined behaviour: text it could
// trip on is refused here first, with its line.
Status CheckConfigText(std::string_view text, const std::string& path) {
  // Whether a line is inside a multi-line string decides what toml++ makes
  // of it: with non-ASCII text around, such strings are not accepted.
  const bool any_non_ascii = std::any_of(
      text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
  if (any_non_ascii && (text.find("\"\"\"") != std::string_view::npos ||
                        text.find("\'\'\'") != std::string_view::npos)) {
    return MakeError(ErrorKind::kConfig,
                     path +
                         ": multi-line strings (three quotes) cannot be used in a file with "
                         "non-ASCII text");
  }
  size_t line_number = 1;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    bool non_ascii = false;
    for (char c : line) {
      auto byte = static_cast<unsigned char>(c);
      if ((byte < 0x20 && c != '\t' && c != '\r') || byte == 0x7f) {
        return MakeError(ErrorKind::kConfig, path + ":" + std::to_string(line_number) +
                                                 ": invalid TOML: a control character (byte " +
                                                 std::to_string(byte) + ")");
      }
      non_ascii = non_ascii || byte >= 0x80;
    }
    if (non_ascii && !IsPlainValueLine(line)) {
      return MakeError(ErrorKind::kConfig,
                       path + ":" + std::to_string(line_number) +
                           ": non-ASCII text is allowed only in quoted one-line values "
                           "(key = \"...\") and comments");
    }
    start = end + 1;
    ++line_number;
  }
  return Status::Ok();
}

// A directory an account owns: its maildir or its state_dir.
struct OwnedDir {
  const AccountConfig* account;
  const char* key;       // "maildir" or "state_dir"
  std::string path;      // as configured (normalised)
  std::string resolved;  // ResolvePath(path)
};

std::string Describe(const OwnedDir& dir) {
  return "account " + dir.account->name + "'s " + dir.key + " " + dir.path;
}

// Two accounts syncing into one tree would take each other's files for
// messages deleted or added locally, and share one index and lock. Checks
// every pair of accounts (in file order, with the line of each table), both
// as written and with symbolic links followed.
Status CheckAccountsApart(const Validator& v,
                          const std::vector<std::pair<uint32_t, AccountConfig>>& accounts) {
  std::vector<std::vector<OwnedDir>> dirs;
  for (const auto& [line, account] : accounts) {
    dirs.emplace_back();
    if (!account.maildir.empty()) {
      dirs.back().push_back({&account, "maildir", account.maildir, ResolvePath(account.maildir)});
    }
    if (!account.state_dir.empty()) {
      dirs.back().push_back(
          {&account, "state_dir", account.state_dir, ResolvePath(account.state_dir)});
    }
  }
  for (size_t j = 1; j < dirs.size(); ++j) {
    for (size_t i = 0; i < j; ++i) {
      for (const OwnedDir& a : dirs[i]) {
        for (const OwnedDir& b : dirs[j]) {
          const bool written = IsSameOrInside(a.path, b.path) || IsSameOrInside(b.path, a.path);
          if (!written && !IsSameOrInside(a.resolved, b.resolved) &&
              !IsSameOrInside(b.resolved, a.resolved)) {
            continue;
          }
          const std::string& pa = written ? a.path : a.resolved;
          const std::string& pb = written ? b.path : b.resolved;
          const bool same = pa == pb;
          const bool b_inside = same || IsSameOrInside(pb, pa);
          const OwnedDir& inner = b_inside ? b : a;
          const OwnedDir& outer = b_inside ? a : b;
          std::string what;
          if (same && written && std::strcmp(a.key, b.key) == 0) {
            what = "accounts " + a.account->name + " and " + b.account->name + " both use the " +
                   (std::strcmp(a.key, "maildir") == 0 ? "Maildir " : "state_dir ") + a.path;
          } else {
            what = Describe(inner) + (same ? " is " : " is inside ") + Describe(outer);
          }
          if (!written) {
            what += same ? " (both are " + pa + " after following symbolic links)"
                         : " (after following symbolic links: " + inner.resolved + " is inside " +
                               outer.resolved + ")";
          }
          toml::source_region where{};
          where.begin.line = accounts[j].first;
          return v.At(where, "", what + ": each account needs its own maildir (and state_dir)");
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Result<Config> ParseConfig(const std::string& text, const std::string& path) {
  Validator v(path);
  if (Status checked = CheckConfigText(text, path); !checked.ok()) return checked.error();
  toml::parse_result parsed = toml::parse(text, path);
  if (!parsed) {
    const toml::parse_error& error = parsed.error();
    return v.At(error.source(), "", "invalid TOML: " + std::string(error.description()));
  }
  const toml::table& root = parsed.table();
  Config config;
  config.path = path;
  for (const auto& [key, value] : root) {
    if (key.str() == "max_accounts") {
      Result<int64_t> count = GetInteger(v, value, "max_accounts", 1, 1000);
      if (!count) return count.error();
      config.max_accounts = static_cast<uint32_t>(*count);
      continue;
    }
    if (key.str() != "accounts" && key.str() != "migrations") {
      return v.At(value.source(), std::string(key.str()),
                  "unknown top-level key (known: max_accounts; accounts are configured as "
                  "[accounts.NAME], migrations as [migrations.NAME])");
    }
  }
  const toml::node* accounts = root.get("accounts");
  if (accounts == nullptr || accounts->as_table() == nullptr || accounts->as_table()->empty()) {
    return v.At(accounts != nullptr ? accounts->source() : toml::source_region{}, "",
                "no accounts defined; add an [accounts.NAME] table with host, user and "
                "password (see mailmirror.conf(5))");
  }
  // toml++ keeps tables sorted by key; list accounts in file order instead.
  std::vector<std::pair<uint32_t, AccountConfig>> by_line;
  for (const auto& [name, node] : *accounts->as_table()) {
    Result<AccountConfig> account = ParseAccount(v, name.str(), node);
    if (!account) return account.error();
    by_line.emplace_back(node.source().begin.line, std::move(account).value());
  }
  std::stable_sort(by_line.begin(), by_line.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  if (Status apart = CheckAccountsApart(v, by_line); !apart.ok()) return apart.error();
  for (auto& [line, account] : by_line) {
    if (account.tls == TlsMode::kNone && !IsLoopbackHost(account.host)) {
      config.warnings.push_back("account " + account.name + ": tls = \"none\" with host " +
                                account.host +
                                ", not this machine: the password and mail travel unencrypted");
    }
    config.accounts.push_back(std::move(account));
  }
  if (const toml::node* migrations = root.get("migrations")) {
    if (migrations->as_table() == nullptr) {
      return v.At(migrations->source(), "migrations", "expected tables: [migrations.NAME]");
    }
    std::vector<std::pair<uint32_t, MigrationConfig>> migrations_by_line;
    for (const auto& [name, node] : *migrations->as_table()) {
      Result<MigrationConfig> migration = ParseMigration(v, name.str(), node);
      if (!migration) return migration.error();
      for (const std::string* account : {&migration->source, &migration->target}) {
        const bool known =
            std::any_of(config.accounts.begin(), config.accounts.end(),
                        [&](const AccountConfig& each) { return each.name == *account; });
        if (!known) {
          return v.At(node.source(), "migrations." + std::string(name.str()),
                      "no account named \"" + *account + "\"");
        }
      }
      if (migration->source == migration->target) {
        return v.At(node.source(), "migrations." + std::string(name.str()),
                    "source and target are the same account");
      }
      migrations_by_line.emplace_back(node.source().begin.line, std::move(migration).value());
    }
    std::stable_sort(migrations_by_line.begin(), migrations_by_line.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [line, migration] : migrations_by_line) {
      config.migrations.push_back(std::move(migration));
    }
  }
  return config;
}

Result<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    return MakeError(ErrorKind::kConfig,
                     "cannot read config file " + path + ": " + std::strerror(err) +
                         " (create it, or pass another with -c FILE; see mailmirror.conf(5))");
  }
  std::ostringstream text;
  text << in.rdbuf();
  Result<Config> config = ParseConfig(text.str(), path);
  if (!config.ok()) return config;
  // Secrets the file itself holds make it worth keeping from other users.
  std::string secrets;
  bool has_password = false;
  for (const AccountConfig& account : config->accounts) {
    for (const auto& [key, value] :
         {std::pair<const char*, const std::string*>{"password", &account.password},
          {"oauth_client_secret", &account.oauth_client_secret}}) {
      if (value->empty()) continue;
      if (!secrets.empty()) secrets += ", ";
      secrets += std::string(key) + " of account " + account.name;
      has_password = has_password || std::strcmp(key, "password") == 0;
    }
  }
  struct stat st {};
  if (!secrets.empty() && ::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    char mode[8];
    (void)std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    config->warnings.push_back(
        "config file " + path + " holds secrets (" + secrets + ") and is readable by " +
        ((st.st_mode & 007) != 0 ? "everyone" : "its group") + " (mode " + mode + "): chmod 600 " +
        path + (has_password ? ", or move the password to password_cmd" : ""));
  }
  return config;
}

Result<std::string> ResolvePassword(const AccountConfig& account) {
  if (account.password_cmd.empty()) return account.password;
  return RunSecretCommand(account, "password_cmd", account.password_cmd);
}

}  // namespace mailmirror
