// Gmail shows each label as a folder, so one message (one X-GM-MSGID)
// arrives in as many folders as it has labels. GmailLabels finds where an
// account already stores a message, so that a folder's download hard-links
// that file instead of fetching the body again (gmail_labels = "link").
//
// It reads the index, which holds every stored message with its id (earlier
// runs, and this run's folders once their batches are committed), and
// predicts the file's name from the record. A file a reader renamed since is
// not found: that message is downloaded as usual.
//
// Threading: Find runs on the loop thread; it only reads the index.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "store/index.h"

namespace mailmirror::sync {

class GmailLabels {
 public:
  // `folder_path` gives the Maildir directory of a folder id of the index,
  // or nullopt for folders this run does not sync (excluded by `folders`).
  using FolderPath = std::function<std::optional<std::string>(uint32_t folder_id)>;
  GmailLabels(store::Index* index, FolderPath folder_path)
      : index_(index), folder_path_(std::move(folder_path)) {}

  struct Source {
    std::string path;  // the stored file
    uint64_t size = 0;
    uint64_t digest = 0;
  };
  // A stored file holding message `msgid` outside folder `except_folder`;
  // nullopt when none is known (or the index cannot be read: then the
  // message is simply downloaded).
  std::optional<Source> Find(uint64_t msgid, uint32_t except_folder) const;

 private:
  store::Index* index_;
  FolderPath folder_path_;
};

}  // namespace mailmirror::sync
