// The IMAP response grammar: turns the tokens of one complete response into
// a typed Response. Used by ResponseParser once the framer has a whole
// response; separate so that the grammar reads top-down without framing.
#pragma once

#include <string_view>
#include <vector>

#include "imap/response.h"
#include "imap/tokenizer.h"

namespace mailmirror::imap {

// Empties `response` for reuse while keeping the capacity of its vectors, so
// steady-state parsing does not allocate. The response code's item vector is
// parked in `spare_code_items` while the response has no code.
void ClearResponse(Response* response, std::vector<std::string_view>* spare_code_items);

// Parses the whole response in `tokens` into `response` (which must be
// cleared). Returns false on malformed input; tokens.error() says why.
bool ReadResponse(Tokenizer* tokens, Response* response,
                  std::vector<std::string_view>* spare_code_items);

}  // namespace mailmirror::imap
