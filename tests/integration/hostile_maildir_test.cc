// The local Maildir as an attacker (or an unlucky user) could leave it
// (issue 19): symbolic links to secrets, devices and directories, FIFOs,
// sockets, subdirectories, empty and binary files, names with newlines and
// malformed suffixes, a folder directory that is a link out of the root.
// mailmirror reads only regular files under its root, writes only inside
// it, never hangs on any of them, uploads exactly the real messages, and
// says so once: the next run is quiet about the same files.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/alice_test.h"
#include "support/dovecot_fixture.h"
#include "support/run_command.h"
#include "support/sync_checks.h"

namespace mailmirror {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::ReadFile;
using testing::Report;
using testing::ServerMessage;

std::string Message(const std::string& id, const std::string& body) {
  return "From: Alice <alice@example.test>\nTo: bob@example.org\nSubject: " + id +
         "\nMessage-ID: <" + id + "@local.test>\nDate: Wed, 03 Jul 2024 10:00:00 +0000\n\n" + body +
         "\n";
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

class HostileMaildirTest : public testing::AliceTest {
 protected:
  std::vector<ServerMessage> Server() {
    std::optional<std::vector<ServerMessage>> messages = server_->Messages("alice");
    EXPECT_TRUE(messages.has_value());
    return messages.value_or(std::vector<ServerMessage>());
  }

  size_t ServerWith(const std::string& needle) {
    size_t count = 0;
    for (const ServerMessage& message : Server()) {
      if (ReadFile(message.file).find(needle) != std::string::npos) ++count;
    }
    return count;
  }
};

TEST_F(HostileMaildirTest, OnlyRegularMessageFilesAreReadAndEachIsReportedOnce) {
  CommandResult first = Run("sync");
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  const size_t before = Server().size();
  const std::string cur = root_ + "/INBOX/cur/";
  const std::string outside = dir_ + "/outside";
  fs::create_directories(outside);
  WriteFile(outside + "/secret", "root:x:0:0:TOP-SECRET-OUTSIDE\n");

  fs::create_symlink(outside + "/secret", cur + "secret-link:2,S");
  fs::create_symlink("/dev/zero", cur + "zero-link:2,S");
  fs::create_symlink(outside, cur + "dir-link:2,S");
  ASSERT_EQ(::mkfifo((cur + "fifo:2,S").c_str(), 0600), 0);
  // A socket bound in the folder (a path short enough for sun_path).
  const std::string socket_path = cur + "sock:2,S";
  int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  ASSERT_LT(socket_path.size(), sizeof address.sun_path) << socket_path;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", socket_path.c_str());
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  fs::create_directory(cur + "subdir:2,S");
  WriteFile(cur + "empty:2,S", "");
  WriteFile(cur + "binary:2,S", Message("binary", std::string("a\0b\0c", 5)));
  // A newline is legal in a name; one that also forges a log line is malformed too.
  WriteFile(cur + "newline\nin-name:2,S", Message("newline-name", "odd but valid name"));
  WriteFile(cur + "evil\nmailmirror: FORGED LINE:2,S", Message("evil-name", "forging name"));
  for (const char* name :
       {"old-info:1,S", "twice:2,S:2,T", "bad-uid,U=abc:2,S", "zero-uid,U=0:2,S"}) {
    WriteFile(cur + name, Message(std::string("malformed-") + name[0], "malformed name"));
  }
  // A 2 GB sparse file above the upload limit: refused without reading it whole.
  {
    int fd = ::open((cur + "huge:2,S").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, off_t{2} << 30), 0);
    ::close(fd);
  }
  WriteFile(cur + "real:2,S", Message("real", "a real message written locally"));
  // A folder directory that leads out of the root, and the server folder of that name.
  const std::string elsewhere = dir_ + "/elsewhere";
  for (const char* sub : {"/cur", "/new", "/tmp"}) fs::create_directories(elsewhere + sub);
  WriteFile(elsewhere + "/cur/planted:2,S", Message("planted", "from outside the root"));
  fs::create_symlink(elsewhere, root_ + "/Ext");
  ASSERT_TRUE(server_->AddMessage("alice", "Ext", Message("ext-server", "server side")));

  std::ofstream(config_, std::ios::app) << "max_upload_size = 100\n";  // MB
  for (int run = 0; run < 2; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    CommandResult result = Run("sync");
    ASSERT_FALSE(result.timed_out) << Report(result);
    EXPECT_EQ(result.exit_code, 0) << Report(result);
    // Exactly the real messages went up (one with an odd but valid name).
    EXPECT_EQ(ServerWith("<real@local.test>"), 1u);
    EXPECT_EQ(ServerWith("<newline-name@local.test>"), 1u);
    EXPECT_EQ(ServerWith("<evil-name@local.test>"), 0u);
    EXPECT_EQ(Server().size(), before + 3) << "real, newline-name, ext-server";
    EXPECT_EQ(ServerWith("TOP-SECRET-OUTSIDE"), 0u);
    EXPECT_EQ(ServerWith("<planted@local.test>"), 0u);
    EXPECT_EQ(ServerWith("<binary@local.test>"), 0u);
    EXPECT_EQ(ServerWith("malformed name"), 0u);
    // Nothing was written outside the root.
    EXPECT_TRUE(fs::is_empty(elsewhere + "/new"));
    EXPECT_TRUE(fs::is_empty(elsewhere + "/tmp"));
    EXPECT_TRUE(fs::exists(elsewhere + "/cur/planted:2,S"));
    // Nothing refused was renamed.
    for (const char* name :
         {"secret-link:2,S", "zero-link:2,S", "dir-link:2,S", "fifo:2,S", "sock:2,S", "subdir:2,S",
          "empty:2,S", "binary:2,S", "huge:2,S", "old-info:1,S", "twice:2,S:2,T",
          "bad-uid,U=abc:2,S", "zero-uid,U=0:2,S"}) {
      EXPECT_TRUE(fs::symlink_status(cur + name).type() != fs::file_type::not_found) << name;
    }
    // No line can be forged with a file name.
    EXPECT_EQ(result.err.find("\nmailmirror: FORGED LINE"), std::string::npos) << Report(result);
    if (run == 0) {
      for (const char* name :
           {"secret-link", "zero-link", "dir-link", "fifo", "sock", "subdir", "empty", "binary",
            "huge", "old-info", "twice", "bad-uid", "zero-uid", "evil\\nmailmirror: FORGED"}) {
        EXPECT_NE(result.err.find(std::string("cur/") + name), std::string::npos) << name << "\n"
                                                                                  << Report(result);
      }
      EXPECT_NE(result.err.find("Ext is a symbolic link"), std::string::npos) << Report(result);
    } else {
      // Reported once: the files are as they were, so nothing is said of them.
      EXPECT_EQ(result.err.find("INBOX: cur/"), std::string::npos) << Report(result);
    }
    EXPECT_NE(result.out.find("14 local files not uploaded (kept here)"), std::string::npos)
        << Report(result);
  }
  ::close(sock);
  // status lists them with the reason.
  CommandResult status = Run("status");
  EXPECT_EQ(status.exit_code, 0) << Report(status);
  EXPECT_NE(status.out.find("not uploaded: INBOX/cur/fifo:2,S: a FIFO, not a file"),
            std::string::npos)
      << status.out;
  EXPECT_NE(status.out.find("not uploaded: INBOX/cur/binary:2,S: it holds NUL bytes"),
            std::string::npos)
      << status.out;

  // A changed file is tried again.
  WriteFile(cur + "empty:2,S", Message("no-longer-empty", "filled in later"));
  CommandResult again = Run("sync");
  EXPECT_EQ(again.exit_code, 0) << Report(again);
  EXPECT_EQ(ServerWith("<no-longer-empty@local.test>"), 1u);
}

// With the index inside the Maildir, a root moved away or an unmounted disk
// looked like a first run and was filled again (issue 19): a record outside
// the Maildir says it was synced before.
TEST_F(HostileMaildirTest, MovedOrUnmountedMaildirIsNotFilledAgain) {
  CommandResult first = Run("sync");
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  fs::rename(root_, root_ + ".old");
  CommandResult moved = Run("sync");
  EXPECT_EQ(moved.exit_code, 78) << Report(moved);
  EXPECT_NE(moved.err.find("is missing, but mailmirror has synced into it before"),
            std::string::npos)
      << Report(moved);
  EXPECT_FALSE(fs::exists(root_));
  fs::create_directory(root_);  // an empty mount point
  CommandResult empty = Run("sync");
  EXPECT_EQ(empty.exit_code, 78) << Report(empty);
  EXPECT_NE(empty.err.find("is empty"), std::string::npos) << Report(empty);
  EXPECT_TRUE(fs::is_empty(root_));
  // Starting over is one deletion away, as the message says.
  testing::ForgetSyncedRoots();
  CommandResult fresh = Run("sync");
  EXPECT_EQ(fresh.exit_code, 0) << Report(fresh);
}

// A local "inbox" beside INBOX is INBOX under another spelling (IMAP names
// it case-insensitively): said so, not taken for a folder gone from the
// server, nothing uploaded from it (issue 19).
TEST_F(HostileMaildirTest, LowerCaseInboxIsNamedForWhatItIs) {
  CommandResult first = Run("sync");
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  const size_t before = Server().size();
  for (const char* sub : {"/cur", "/new", "/tmp"}) fs::create_directories(root_ + "/inbox" + sub);
  WriteFile(root_ + "/inbox/cur/lower:2,S", Message("lower-inbox", "in inbox/"));
  CommandResult run = Run("sync");
  EXPECT_EQ(run.exit_code, 0) << Report(run);
  EXPECT_NE(
      run.err.find("Maildir folder inbox is the server's folder INBOX under another spelling"),
      std::string::npos)
      << Report(run);
  EXPECT_EQ(run.err.find("gone from the server"), std::string::npos) << Report(run);
  EXPECT_EQ(Server().size(), before);
}

// Secret commands run with no descriptor but stdin, stdout and stderr
// (the index's LMDB file is open meanwhile, without O_CLOEXEC) and with
// core dumps off, as the whole process runs (issue 19).
TEST_F(HostileMaildirTest, PasswordCommandInheritsNoDescriptorAndNoCoreLimit) {
  std::string text = ReadFile(config_);
  const std::string password = "password = \"alice-secret\"\n";
  ASSERT_NE(text.find(password), std::string::npos);
  const std::string fds = dir_ + "/password-cmd-fds";
  text.replace(text.find(password), password.size(),
               "password_cmd = \"ls -l /proc/$$/fd > " + fds + "; ulimit -c >> " + fds +
                   "; echo alice-secret\"\n");
  std::ofstream(config_, std::ios::trunc) << text;
  CommandResult first = Run("sync");
  ASSERT_EQ(first.exit_code, 0) << Report(first);
  CommandResult second = Run("sync");  // the index exists and is open now
  ASSERT_EQ(second.exit_code, 0) << Report(second);
  const std::string listing = ReadFile(fds);
  EXPECT_EQ(listing.find("data.mdb"), std::string::npos) << listing;
  EXPECT_EQ(listing.find("lock"), std::string::npos) << listing;
  EXPECT_EQ(listing.find("socket:"), std::string::npos) << listing;
  EXPECT_NE(listing.find("\n0\n"), std::string::npos) << "core size limit:\n" << listing;
}

// A trailing slash on maildir made the state directory's path compare
// unequal to the folder path of a server folder named "mailmirror" under
// Maildir++, which then went into the index's directory (issue 19).
TEST_F(HostileMaildirTest, TrailingSlashCannotPutAFolderIntoTheStateDirectory) {
  ASSERT_TRUE(server_->AddMessage("alice", "mailmirror", Message("state-clash", "x")));
  std::string text = ReadFile(config_);
  const std::string maildir = "maildir = \"" + root_ + "\"";
  ASSERT_NE(text.find(maildir), std::string::npos);
  text.replace(text.find(maildir), maildir.size(),
               "maildir = \"" + root_ + "/\"\nlayout = \"maildir++\"");
  std::ofstream(config_, std::ios::trunc) << text;
  CommandResult run = Run("sync");
  EXPECT_EQ(run.exit_code, 0) << Report(run);
  EXPECT_NE(run.err.find("would be stored in the state directory"), std::string::npos)
      << Report(run);
  EXPECT_FALSE(fs::exists(root_ + "/.mailmirror/cur"));
  EXPECT_TRUE(fs::exists(root_ + "/.mailmirror/index"));
}

}  // namespace
}  // namespace mailmirror
