#include "sync/gmail_labels.h"

#include "store/maildir.h"

namespace mailmirror::sync {

std::optional<GmailLabels::Source> GmailLabels::Find(uint64_t msgid, uint32_t except_folder) const {
  if (msgid == 0) return std::nullopt;
  Result<std::vector<std::pair<uint32_t, uint32_t>>> holders = index_->FindGmailMessage(msgid);
  if (!holders.ok()) return std::nullopt;
  for (const auto& [folder_id, uid] : *holders) {
    if (folder_id == except_folder) continue;
    std::optional<std::string> directory = folder_path_(folder_id);
    if (!directory) continue;
    Result<std::optional<store::MessageRecord>> record = index_->GetMessage(folder_id, uid);
    if (!record.ok() || !record->has_value() || (*record)->stem.empty()) continue;
    const store::MessageRecord& message = **record;
    Source source;
    source.path = *directory + (message.in_cur ? "/cur/" : "/new/") +
                  store::MakeMaildirName(message.stem, message.uid, message.flags);
    source.size = message.size;
    source.digest = message.digest;
    return source;
  }
  return std::nullopt;
}

}  // namespace mailmirror::sync
