// The three-way merge, table-driven: every combination of (unchanged,
// flags changed, deleted, moved) on each side, under each policy that
// limits it, plus messages new on both sides.
#include "sync/merge_plan.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "store/maildir.h"

namespace mailmirror::sync {
namespace {

using store::FlagLetters;
using store::kFlagFlagged;
using store::kFlagSeen;

constexpr uint32_t kUid = 7;
constexpr uint32_t kBase = kFlagSeen;

enum class What { kUnchanged, kFlags, kDeleted, kMoved };

// Local flag change: +F. Remote flag change: -S. (Different flags, so the
// merge has something to merge.)
SideState Side(What what, bool local) {
  SideState side;
  side.flags = kBase;
  switch (what) {
    case What::kUnchanged:
      break;
    case What::kFlags:
      side.flags = local ? kBase | kFlagFlagged : 0;
      break;
    case What::kDeleted:
      side.present = false;
      break;
    case What::kMoved:
      side.present = false;
      side.moved_to = local ? "Local/Dest" : "Remote/Dest";
      break;
  }
  return side;
}

std::string Flags(uint32_t flags) { return FlagLetters(flags).empty() ? "-" : FlagLetters(flags); }

std::string Describe(const FolderPlan& plan) {
  std::string out;
  auto add = [&out](const std::string& item) { out += (out.empty() ? "" : " ") + item; };
  for (const FlagChange& c : plan.remote_flags)
    add("remote_flags+" + Flags(c.add) + "-" + Flags(c.remove));
  for (uint32_t uid : plan.remote_expunge) add("remote_expunge" + std::to_string(uid));
  for (uint32_t uid : plan.remote_mark_deleted) add("remote_mark_deleted" + std::to_string(uid));
  for (const MoveAction& m : plan.remote_moves)
    add("remote_move:" + m.folder + ":" + Flags(m.flags));
  for (const MoveAction& m : plan.remote_restore)
    add("remote_restore:" + m.folder + ":" + Flags(m.flags));
  for (const FlagChange& c : plan.local_flags)
    add("local_flags+" + Flags(c.add) + "-" + Flags(c.remove));
  for (uint32_t uid : plan.local_delete) add("local_delete" + std::to_string(uid));
  for (const MoveAction& m : plan.local_moves) add("local_move:" + m.folder + ":" + Flags(m.flags));
  for (uint32_t uid : plan.local_restore) add("local_restore" + std::to_string(uid));
  for (const auto& [uid, flags] : plan.new_base) add("base:" + Flags(flags));
  for (uint32_t uid : plan.forget) add("forget" + std::to_string(uid));
  for (uint32_t uid : plan.detach) add("detach" + std::to_string(uid));
  for (uint32_t uid : plan.conflicts) add("conflict" + std::to_string(uid));
  return out.empty() ? "nothing" : out;
}

struct Row {
  What local;
  What remote;
  const char* both;  // direction = both, expunge = both
  const char* pull;  // direction = pull
  const char* push;  // direction = push
  const char* keep;  // expunge = none
};

// Base flags S; local +F gives FS; remote -S gives none; merged: F.
const Row kTable[] = {
    {What::kUnchanged, What::kUnchanged, "nothing", "nothing", "nothing", "nothing"},
    {What::kUnchanged, What::kFlags, "local_flags+--S base:-", "local_flags+--S base:-", "nothing",
     "local_flags+--S base:-"},
    {What::kUnchanged, What::kDeleted, "local_delete7 forget7", "local_delete7 forget7", "nothing",
     "detach7"},
    {What::kUnchanged, What::kMoved, "local_move:Remote/Dest:S forget7",
     "local_move:Remote/Dest:S forget7", "nothing", "local_move:Remote/Dest:S forget7"},

    {What::kFlags, What::kUnchanged, "remote_flags+F-- base:FS", "nothing",
     "remote_flags+F-- base:FS", "remote_flags+F-- base:FS"},
    {What::kFlags, What::kFlags, "remote_flags+F-- local_flags+--S base:F conflict7",
     "local_flags+--S conflict7", "remote_flags+F-- conflict7",
     "remote_flags+F-- local_flags+--S base:F conflict7"},
    {What::kFlags, What::kDeleted, "remote_restore::FS forget7 conflict7", "conflict7",
     "remote_restore::FS forget7 conflict7", "remote_restore::FS forget7 conflict7"},
    {What::kFlags, What::kMoved, "local_move:Remote/Dest:FS forget7 conflict7",
     "local_move:Remote/Dest:FS forget7 conflict7", "conflict7",
     "local_move:Remote/Dest:FS forget7 conflict7"},

    {What::kDeleted, What::kUnchanged, "remote_expunge7 forget7", "nothing",
     "remote_expunge7 forget7", "remote_mark_deleted7 forget7"},
    {What::kDeleted, What::kFlags, "local_restore7 base:- conflict7",
     "local_restore7 base:- conflict7", "conflict7", "local_restore7 base:- conflict7"},
    {What::kDeleted, What::kDeleted, "forget7 conflict7", "forget7 conflict7", "forget7 conflict7",
     "forget7 conflict7"},
    {What::kDeleted, What::kMoved, "forget7 conflict7", "forget7 conflict7", "forget7 conflict7",
     "forget7 conflict7"},

    {What::kMoved, What::kUnchanged, "remote_move:Local/Dest:S forget7", "nothing",
     "remote_move:Local/Dest:S forget7", "remote_move:Local/Dest:S forget7"},
    {What::kMoved, What::kFlags, "remote_move:Local/Dest:- forget7 conflict7", "conflict7",
     "remote_move:Local/Dest:- forget7 conflict7", "remote_move:Local/Dest:- forget7 conflict7"},
    {What::kMoved, What::kDeleted, "remote_restore:Local/Dest:S forget7 conflict7", "conflict7",
     "remote_restore:Local/Dest:S forget7 conflict7",
     "remote_restore:Local/Dest:S forget7 conflict7"},
    {What::kMoved, What::kMoved, "remote_restore:Local/Dest:S forget7 conflict7",
     "forget7 conflict7", "remote_restore:Local/Dest:S forget7 conflict7",
     "remote_restore:Local/Dest:S forget7 conflict7"},
};

const char* Name(What what) {
  switch (what) {
    case What::kUnchanged:
      return "unchanged";
    case What::kFlags:
      return "flags";
    case What::kDeleted:
      return "deleted";
    case What::kMoved:
      return "moved";
  }
  return "?";
}

TEST(MergePlanTest, EveryCombinationUnderEveryPolicy) {
  MergePolicy both;
  MergePolicy pull;
  pull.push = false;
  MergePolicy push;
  push.pull = false;
  MergePolicy keep;
  keep.expunge_local = false;
  keep.expunge_remote = false;
  for (const Row& row : kTable) {
    KnownMessage message{kUid, kBase, Side(row.local, true), Side(row.remote, false)};
    const std::string where =
        std::string("local ") + Name(row.local) + ", remote " + Name(row.remote);
    EXPECT_EQ(Describe(PlanFolder({message}, both)), row.both) << where << ", direction both";
    EXPECT_EQ(Describe(PlanFolder({message}, pull)), row.pull) << where << ", direction pull";
    EXPECT_EQ(Describe(PlanFolder({message}, push)), row.push) << where << ", direction push";
    EXPECT_EQ(Describe(PlanFolder({message}, keep)), row.keep) << where << ", expunge none";
  }
}

TEST(MergePlanTest, FlagsMergePerFlag) {
  // Base S F; local clears F and sets R; remote clears S: merged R.
  const uint32_t answered = store::kFlagAnswered;
  KnownMessage message{
      kUid, kFlagSeen | kFlagFlagged, {true, kFlagSeen | answered, ""}, {true, kFlagFlagged, ""}};
  FolderPlan plan = PlanFolder({message}, MergePolicy{});
  ASSERT_EQ(plan.new_base.size(), 1u);
  EXPECT_EQ(plan.new_base[0].second, answered);
  EXPECT_EQ(plan.local_flags, (std::vector<FlagChange>{{kUid, 0, kFlagSeen}}));
  EXPECT_EQ(plan.remote_flags, (std::vector<FlagChange>{{kUid, answered, kFlagFlagged}}));
  // The same change on both sides: nothing to send either way.
  KnownMessage same{kUid, 0, {true, kFlagSeen, ""}, {true, kFlagSeen, ""}};
  plan = PlanFolder({same}, MergePolicy{});
  EXPECT_TRUE(plan.local_flags.empty());
  EXPECT_TRUE(plan.remote_flags.empty());
  EXPECT_EQ(plan.new_base, (std::vector<std::pair<uint32_t, uint32_t>>{{kUid, kFlagSeen}}));
}

TEST(MergePlanTest, MarkDeletedOnlyWhenNotAlreadyMarked) {
  MergePolicy keep;
  keep.expunge_remote = false;
  KnownMessage marked{kUid, store::kFlagDeleted, {false, 0, ""}, {true, store::kFlagDeleted, ""}};
  FolderPlan plan = PlanFolder({marked}, keep);
  EXPECT_TRUE(plan.remote_mark_deleted.empty());
  EXPECT_EQ(plan.forget, std::vector<uint32_t>{kUid});
}

TEST(MergePlanTest, MovedToTheSameFolderOnBothSidesIsDone) {
  KnownMessage message{kUid, kBase, {false, kBase, "Archive"}, {false, kBase, "Archive"}};
  EXPECT_EQ(Describe(PlanFolder({message}, MergePolicy{})), "forget7 conflict7");
}

TEST(MergePlanTest, ManyMessagesEachGetTheirOwnActions) {
  std::vector<KnownMessage> messages;
  for (uint32_t uid = 1; uid <= 4; ++uid) {
    messages.push_back(
        KnownMessage{uid, kBase, Side(What::kUnchanged, true), Side(What::kUnchanged, false)});
  }
  messages[1].local = Side(What::kDeleted, true);
  messages[3].remote = Side(What::kFlags, false);
  FolderPlan plan = PlanFolder(messages, MergePolicy{});
  EXPECT_EQ(plan.remote_expunge, std::vector<uint32_t>{2});
  ASSERT_EQ(plan.local_flags.size(), 1u);
  EXPECT_EQ(plan.local_flags[0].uid, 4u);
  EXPECT_EQ(plan.forget, std::vector<uint32_t>{2});
}

TEST(MergePlanTest, DeletedHereAndOnlyMarkedDeletedThereIsExpunged) {
  KnownMessage message{
      kUid, store::kFlagSeen, {false, 0, ""}, {true, store::kFlagSeen | store::kFlagDeleted, ""}};
  FolderPlan plan = PlanFolder({message}, MergePolicy{});
  EXPECT_EQ(plan.remote_expunge, std::vector<uint32_t>{kUid});
  EXPECT_EQ(plan.forget, std::vector<uint32_t>{kUid});
  EXPECT_TRUE(plan.local_restore.empty());
  // Any other change there still wins over the deletion.
  message.remote.flags |= store::kFlagFlagged;
  plan = PlanFolder({message}, MergePolicy{});
  EXPECT_EQ(plan.local_restore, std::vector<uint32_t>{kUid});
  EXPECT_TRUE(plan.remote_expunge.empty());
}

}  // namespace
}  // namespace mailmirror::sync
