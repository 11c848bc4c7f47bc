// Mailbox names: modified UTF-7 (RFC 3501 §5.1.3) to and from UTF-8.
//
// IMAP4rev1 servers send non-ASCII mailbox names in modified UTF-7
// ("Entw&APw-rfe" for "Entwürfe"). The engine keeps the server's raw bytes as
// the canonical key and shows users UTF-8.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mailmirror::imap {

// Decodes a modified UTF-7 name to UTF-8. Returns nullopt for malformed input
// (bad base64, '&' without '-', odd byte count, unpaired surrogate, an
// encoded run that holds only printable ASCII); callers then treat the name
// as opaque bytes.
std::optional<std::string> DecodeMailboxName(std::string_view mutf7);

// Encodes a UTF-8 name to modified UTF-7. Returns nullopt when `utf8` is not
// valid UTF-8.
std::optional<std::string> EncodeMailboxName(std::string_view utf8);

// The name to show a user: the decoded UTF-8 if the raw name decodes, else
// the raw bytes unchanged.
std::string DisplayMailboxName(std::string_view raw);

}  // namespace mailmirror::imap
