// The Env (storage/env.h): the POSIX one's contract, the fault-injecting one's power cut, and
// WriteFileAtomic under a failure and a power cut at every step: the file holds its previous
// content or the new one, the new one whenever the call returned OK, and no temporary is left.
#include "storage/env.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "storage/fault_injection_env.h"
#include "tests/test_util.h"

namespace strata {
namespace {

absl::Status WriteAll(Env& env, const std::string& path, const std::string& data, bool sync) {
  auto f = env.NewWritableFile(path);
  if (!f.ok()) return f.status();
  absl::Status s = (*f)->Append(data);
  if (s.ok() && sync) s = (*f)->Sync();
  if (s.ok()) s = (*f)->Close();
  return s;
}

TEST(PosixEnv, WritesRenamesRemovesAndNamesWhatFailed) {
  testing::TempDir dir;
  Env& env = *Env::Default();
  const std::string a = dir.File("a"), b = dir.File("b");
  ASSERT_TRUE(WriteAll(env, a, "hello", true).ok());
  ASSERT_TRUE(env.SyncDir(dir.path()).ok());
  EXPECT_EQ(*env.ReadFile(a), "hello");
  ASSERT_TRUE(WriteAll(env, b, "old", true).ok());
  ASSERT_TRUE(env.RenameFile(a, b).ok());
  EXPECT_FALSE(env.FileExists(a));
  EXPECT_EQ(*env.ReadFile(b), "hello");
  ASSERT_TRUE(env.RemoveFile(b).ok());
  EXPECT_FALSE(env.FileExists(b));
  const absl::Status missing = env.ReadFile(b).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.message().find(b), std::string::npos) << missing;
  const std::string nowhere = dir.File("no/such/dir/f");
  EXPECT_EQ(env.NewWritableFile(nowhere).status().code(), absl::StatusCode::kNotFound);
  auto f = env.NewWritableFile(a);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_EQ((*f)->Append("x").code(), absl::StatusCode::kFailedPrecondition);
}

TEST(FaultInjectionEnv, APowerCutKeepsOnlyWhatWasSynced) {
  testing::TempDir dir;
  FaultInjectionEnv env;
  const std::string kept = dir.File("kept"), half = dir.File("half"), fresh = dir.File("fresh");
  ASSERT_TRUE(WriteAll(env, kept, "durable", true).ok());
  ASSERT_TRUE(env.SyncDir(dir.path()).ok());
  {  // half: synced part, then an unsynced tail
    auto f = env.NewWritableFile(half);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append("synced|").ok());
    ASSERT_TRUE((*f)->Sync().ok());
    ASSERT_TRUE(env.SyncDir(dir.path()).ok());
    ASSERT_TRUE((*f)->Append("lost").ok());
    ASSERT_TRUE((*f)->Close().ok());
  }
  ASSERT_TRUE(WriteAll(env, fresh, "synced, but its name is not", true).ok());
  // A rename over `kept` without a directory sync: undone, and kept's content returns.
  const std::string moved = dir.File("moved");
  ASSERT_TRUE(WriteAll(env, moved, "new", true).ok());
  ASSERT_TRUE(env.RenameFile(moved, kept).ok());
  EXPECT_EQ(*env.ReadFile(kept), "new");
  ASSERT_TRUE(env.DropUnsyncedData().ok());
  EXPECT_EQ(*env.ReadFile(kept), "durable");
  EXPECT_EQ(*env.ReadFile(half), "synced|");
  EXPECT_FALSE(env.FileExists(fresh));
  EXPECT_FALSE(env.FileExists(moved));
  // With the directory synced, a rename is durable.
  ASSERT_TRUE(WriteAll(env, moved, "new", true).ok());
  ASSERT_TRUE(env.RenameFile(moved, kept).ok());
  ASSERT_TRUE(env.SyncDir(dir.path()).ok());
  ASSERT_TRUE(env.DropUnsyncedData().ok());
  EXPECT_EQ(*env.ReadFile(kept), "new");
}

// Directories: one created since its parent's last sync goes with everything in it, however
// synced that is; a directory renamed without a sync of its parent goes back, files and all.
TEST(FaultInjectionEnv, APowerCutTakesDirectoriesWhoseNamesWereNotSynced) {
  testing::TempDir dir;
  FaultInjectionEnv env;
  const std::string made = dir.File("made"), tmp = dir.File("gen.tmp"), gen = dir.File("gen");
  ASSERT_TRUE(env.CreateDir(made).ok());
  ASSERT_TRUE(WriteAll(env, made + "/f", "synced", true).ok());
  ASSERT_TRUE(env.SyncDir(made).ok());  // f's name is durable in `made`, `made`'s is not
  ASSERT_TRUE(env.CreateDir(tmp).ok());
  ASSERT_TRUE(env.CreateDir(tmp + "/a").ok());
  ASSERT_TRUE(env.CreateDir(tmp + "/a/b").ok());
  ASSERT_TRUE(env.SyncDir(dir.path()).ok());  // gen.tmp is durable, gen.tmp/a not yet
  ASSERT_TRUE(env.RemoveTree(made).ok());
  ASSERT_TRUE(env.CreateDir(made).ok());
  ASSERT_TRUE(WriteAll(env, made + "/f", "synced", true).ok());
  ASSERT_TRUE(env.SyncDir(made).ok());
  ASSERT_TRUE(WriteAll(env, tmp + "/m", "manifest", true).ok());
  ASSERT_TRUE(env.SyncDir(tmp).ok());  // now m and a are; a/b is not
  ASSERT_TRUE(env.RenameFile(tmp, gen).ok());
  EXPECT_EQ(*env.ReadFile(gen + "/m"), "manifest");
  auto children = env.GetChildren(dir.path());
  ASSERT_TRUE(children.ok());
  EXPECT_EQ(children->size(), 2u);
  ASSERT_TRUE(env.DropUnsyncedData().ok());
  EXPECT_FALSE(env.FileExists(made));
  EXPECT_FALSE(env.FileExists(gen));
  EXPECT_EQ(*env.ReadFile(tmp + "/m"), "manifest");  // back under its old name
  EXPECT_TRUE(env.FileExists(tmp + "/a"));
  EXPECT_FALSE(env.FileExists(tmp + "/a/b"));
  // CreateDirs syncs each directory it makes into its parent: all of them stay.
  ASSERT_TRUE(CreateDirs(env, dir.File("x/y/z")).ok());
  // Synced all the way up, the rename holds.
  ASSERT_TRUE(env.RenameFile(tmp, gen).ok());
  ASSERT_TRUE(env.SyncDir(dir.path()).ok());
  ASSERT_TRUE(env.DropUnsyncedData().ok());
  EXPECT_EQ(*env.ReadFile(gen + "/m"), "manifest");
  EXPECT_TRUE(env.FileExists(dir.File("x/y/z")));
}

// PowerCutAfter(n): calls before the n-th go through, it and every later one fail and do nothing,
// until the power cut is over (DropUnsyncedData); a header written at an offset counts as written.
TEST(FaultInjectionEnv, APowerCutStopsEveryLaterWrite) {
  testing::TempDir dir;
  FaultInjectionEnv env;
  const std::string p = dir.File("f");
  auto f = env.NewWritableFile(p);
  ASSERT_TRUE(f.ok());
  env.PowerCutAfter(2);
  ASSERT_TRUE((*f)->Append("body").ok());
  ASSERT_TRUE((*f)->WriteAt(0, "B").ok());
  EXPECT_FALSE(env.power_is_cut());
  const absl::Status s = (*f)->Sync();
  EXPECT_TRUE(env.power_is_cut());
  EXPECT_NE(s.message().find("simulated power cut"), std::string::npos) << s;
  EXPECT_FALSE(env.SyncDir(dir.path()).ok());
  EXPECT_FALSE(env.CreateDir(dir.File("d")).ok());
  EXPECT_FALSE(env.FileExists(dir.File("d")));
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_EQ(*env.ReadFile(p), "Body");
  ASSERT_TRUE(env.DropUnsyncedData().ok());
  EXPECT_FALSE(env.power_is_cut());
  EXPECT_FALSE(env.FileExists(p));  // created, never synced, nor its name
  EXPECT_TRUE(WriteAll(env, p, "after", true).ok());
}

TEST(FaultInjectionEnv, FailsTheChosenCallOnce) {
  testing::TempDir dir;
  FaultInjectionEnv env;
  env.FailNth(FaultInjectionEnv::Op::kSync, 1);
  const std::string p = dir.File("f");
  EXPECT_TRUE(WriteAll(env, p, "a", true).ok());
  const absl::Status s = WriteAll(env, p, "b", true);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_NE(s.message().find("injected sync fault"), std::string::npos) << s;
  EXPECT_TRUE(WriteAll(env, p, "c", true).ok());
  EXPECT_EQ(env.calls(FaultInjectionEnv::Op::kSync), 3);
}

// Every step of WriteFileAtomic fails in turn (as a crash there would stop it), then the power
// goes: the previous content, or the new one when the call said OK; never a torn file, never a
// leftover temporary. Several cycles, each starting from the last durable content.
TEST(WriteFileAtomic, APowerCutAtAnyStepLeavesTheOldOrTheNewContent) {
  testing::TempDir dir;
  FaultInjectionEnv env;
  const std::string path = dir.File("MANIFEST");
  ASSERT_TRUE(WriteFileAtomic(env, path, std::string("version 0")).ok());
  ASSERT_TRUE(env.DropUnsyncedData().ok());
  std::string durable = "version 0";
  int cycle = 0;
  for (int round = 0; round < 3; ++round) {
    for (auto op : {FaultInjectionEnv::Op::kCreate, FaultInjectionEnv::Op::kAppend,
                    FaultInjectionEnv::Op::kSync, FaultInjectionEnv::Op::kRename,
                    FaultInjectionEnv::Op::kSyncDir}) {
      for (bool fail : {true, false}) {
        ++cycle;
        SCOPED_TRACE(
            absl::StrCat("cycle ", cycle, ", op ", static_cast<int>(op), fail ? "" : " ok"));
        const std::string next = absl::StrCat("version ", cycle, std::string(cycle * 37, '.'));
        if (fail) env.FailNth(op, 0);
        const absl::Status s = WriteFileAtomic(env, path, next);
        EXPECT_EQ(s.ok(), !fail) << s;
        ASSERT_TRUE(env.DropUnsyncedData().ok());
        auto got = env.ReadFile(path);
        ASSERT_TRUE(got.ok()) << got.status();
        EXPECT_EQ(*got, s.ok() ? next : durable);
        EXPECT_FALSE(env.FileExists(path + ".tmp"));
        durable = *got;
      }
    }
  }
}

}  // namespace
}  // namespace strata
