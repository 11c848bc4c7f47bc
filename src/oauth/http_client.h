// HTTPS POSTs of HTML forms, for OAuth 2.0 endpoints (libcurl, verifying
// the server's certificate and name; https:// only).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "mailmirror/status.h"

namespace mailmirror::oauth {

struct HttpResponse {
  long status = 0;  // NOLINT(google-runtime-int): libcurl's type
  std::string body;
};

struct HttpOptions {
  std::string ca_file;        // trusted CAs instead of the system's; empty: the system's
  long timeout_seconds = 30;  // NOLINT(google-runtime-int)
};

// POSTs `fields` as application/x-www-form-urlencoded. Errors (kUnavailable)
// are transport failures; any HTTP status is a response.
Result<HttpResponse> PostForm(const std::string& url,
                              const std::vector<std::pair<std::string, std::string>>& fields,
                              const HttpOptions& options);

// Percent-encodes for a form (RFC 3986 unreserved characters stay).
std::string FormEncode(const std::string& text);

}  // namespace mailmirror::oauth
