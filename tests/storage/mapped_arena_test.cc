// A byte array in a mapped scratch file (storage/mapped_arena.h): bytes kept across growth that
// moves the mapping, disk space allocated before it is mapped, shrinking, the file removed with
// the arena, and a creation the Env fails.
#include "storage/mapped_arena.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstring>

#include "storage/fault_injection_env.h"
#include "storage/status_macros.h"
#include "tests/test_util.h"

namespace strata {
namespace {

TEST(MappedArena, KeepsItsBytesAsItGrowsAndShrinks) {
  testing::TempDir dir;
  const std::string path = dir.File("arena");
  {
    absl::StatusOr<std::unique_ptr<MappedArena>> made = MappedArena::Create(*Env::Default(), path);
    ASSERT_TRUE(made.ok()) << made.status();
    MappedArena& a = **made;
    EXPECT_EQ(a.capacity(), 0u);
    EXPECT_EQ(a.data(), nullptr);
    ASSERT_TRUE(a.Reserve(100).ok());
    ASSERT_GE(a.capacity(), 100u);
    std::memset(a.data(), 0x5a, a.capacity());
    uint64_t filled = a.capacity();
    // Allocate leaves the mapping; Map follows the file (doubling at least).
    ASSERT_TRUE(a.Allocate(filled + 1).ok());
    EXPECT_EQ(a.capacity(), filled);
    EXPECT_GE(a.file_bytes(), 2 * filled);
    ASSERT_TRUE(a.Map().ok());
    EXPECT_EQ(a.capacity(), a.file_bytes());
    // A larger mapping (mremap, which may move it): the first bytes are kept, the new ones read
    // as zeros.
    ASSERT_TRUE(a.Reserve(uint64_t{32} << 20).ok());
    for (uint64_t i = 0; i < filled; ++i) ASSERT_EQ(a.data()[i], 0x5a) << i;
    EXPECT_EQ(a.data()[filled], 0);
    a.data()[(uint64_t{32} << 20) - 1] = 7;
    // The file is as large as said, and has no name any more.
    absl::StatusOr<uint64_t> size = a.SizeOnDisk();
    ASSERT_TRUE(size.ok());
    EXPECT_EQ(*size, a.file_bytes());
    EXPECT_FALSE(Env::Default()->FileExists(path));
    const uint8_t* before = a.data();
    const uint64_t big = a.file_bytes();
    a.ShrinkTo(filled);
    EXPECT_EQ(a.data(), before);  // kept in place
    EXPECT_EQ(a.capacity(), filled);
    EXPECT_EQ(a.file_bytes(), big);  // until Trim
    a.Trim();
    EXPECT_EQ(a.file_bytes(), filled);
    EXPECT_EQ(*a.SizeOnDisk(), filled);
    EXPECT_EQ(a.data()[filled - 1], 0x5a);
    a.ShrinkTo(0);
    a.Trim();
    EXPECT_EQ(a.capacity(), 0u);
    EXPECT_EQ(a.file_bytes(), 0u);
    ASSERT_TRUE(a.Reserve(10).ok());
    EXPECT_EQ(a.data()[0], 0);  // a shrunk file's bytes are gone
  }
}

TEST(MappedArena, ReplacesALeftoverAndReportsAFailedCreation) {
  testing::TempDir dir;
  const std::string path = dir.File("arena");
  ASSERT_TRUE(WriteFileAtomic(*Env::Default(), path, std::string("left over by a crash")).ok());
  {
    absl::StatusOr<std::unique_ptr<MappedArena>> made = MappedArena::Create(*Env::Default(), path);
    ASSERT_TRUE(made.ok()) << made.status();
    EXPECT_EQ((*made)->file_bytes(), 0u);
    absl::StatusOr<uint64_t> size = (*made)->SizeOnDisk();
    ASSERT_TRUE(size.ok());
    EXPECT_EQ(*size, 0u);
    EXPECT_FALSE(Env::Default()->FileExists(path));
  }
  FaultInjectionEnv env;
  env.FailNth(FaultInjectionEnv::Op::kCreate, 0);
  absl::StatusOr<std::unique_ptr<MappedArena>> failed = MappedArena::Create(env, path);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("injected"), std::string::npos) << failed.status();
}

// A disk with room for the exact size but not for the doubling gets the exact size; one with no
// room fails, and the file is cut back to what it was even where the file system kept blocks of
// the failed allocation (ext4 does).
class ShortDiskEnv final : public Env {
 public:
  uint64_t room = 0;  // bytes the "disk" can give a file

  class File final : public WritableFile {
   public:
    File(ShortDiskEnv* env, std::unique_ptr<WritableFile> base, int fd)
        : env_(env), base_(std::move(base)), fd_(fd) {}
    absl::Status Append(absl::string_view d) override { return base_->Append(d); }
    absl::Status Sync() override { return base_->Sync(); }
    absl::Status Close() override { return base_->Close(); }
    absl::Status WriteAt(uint64_t o, absl::string_view d) override { return base_->WriteAt(o, d); }
    absl::Status Allocate(uint64_t size) override {
      if (size <= env_->room) return base_->Allocate(size);
      // What a full disk does: part allocated, then ENOSPC.
      (void)base_->Allocate(env_->room + 4096);
      return absl::ResourceExhaustedError("No space left on device (short disk)");
    }

   private:
    ShortDiskEnv* env_;
    std::unique_ptr<WritableFile> base_;
    int fd_;
  };
  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& p) override {
    ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> f, Env::Default()->NewWritableFile(p));
    return std::unique_ptr<WritableFile>(new File(this, std::move(f), -1));
  }
  absl::StatusOr<std::unique_ptr<WritableFile>> OpenWritableFile(const std::string& p) override {
    return Env::Default()->OpenWritableFile(p);
  }
  absl::Status RenameFile(const std::string& a, const std::string& b) override {
    return Env::Default()->RenameFile(a, b);
  }
  absl::Status RemoveFile(const std::string& p) override { return Env::Default()->RemoveFile(p); }
  absl::Status SyncDir(const std::string& d) override { return Env::Default()->SyncDir(d); }
  absl::StatusOr<std::string> ReadFile(const std::string& p) override {
    return Env::Default()->ReadFile(p);
  }
  bool FileExists(const std::string& p) override { return Env::Default()->FileExists(p); }
  absl::Status CreateDir(const std::string& p) override { return Env::Default()->CreateDir(p); }
  absl::Status RemoveTree(const std::string& p) override { return Env::Default()->RemoveTree(p); }
  absl::StatusOr<std::vector<std::string>> GetChildren(const std::string& d) override {
    return Env::Default()->GetChildren(d);
  }
};

TEST(MappedArena, ADiskShortOfTheDoublingGetsTheExactSizeOrNothing) {
  testing::TempDir dir;
  ShortDiskEnv env;
  env.room = 1 << 20;
  const std::string path = dir.File("arena");
  absl::StatusOr<std::unique_ptr<MappedArena>> made = MappedArena::Create(env, path);
  ASSERT_TRUE(made.ok()) << made.status();
  MappedArena& a = **made;
  ASSERT_TRUE(a.Reserve(600 << 10).ok());  // 600 KiB: the doubling would be 1.2 MiB
  EXPECT_EQ(a.file_bytes(), uint64_t{600} << 10);
  a.data()[1000] = 9;
  const absl::Status s = a.Reserve((1 << 20) + 1);
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_EQ(a.file_bytes(), uint64_t{600} << 10);
  absl::StatusOr<uint64_t> size = a.SizeOnDisk();
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, uint64_t{600} << 10);  // cut back: the failed try's blocks given back
  EXPECT_EQ(a.capacity(), uint64_t{600} << 10);
  EXPECT_EQ(a.data()[1000], 9);
}

// An allocation that fails (an EIO, here injected) is tried again at the exact size; a failed
// creation is reported.
TEST(MappedArena, AFailedDoublingFallsBackToTheExactSize) {
  testing::TempDir dir;
  FaultInjectionEnv env;
  absl::StatusOr<std::unique_ptr<MappedArena>> made = MappedArena::Create(env, dir.File("arena"));
  ASSERT_TRUE(made.ok()) << made.status();
  MappedArena& a = **made;
  ASSERT_TRUE(a.Reserve(5000).ok());
  a.data()[4999] = 42;
  const uint64_t capacity = a.capacity();
  env.FailNth(FaultInjectionEnv::Op::kAppend, 0);
  ASSERT_TRUE(a.Reserve(capacity + 1).ok());
  EXPECT_EQ(a.capacity(), capacity + 4096);  // not 2 x capacity
  EXPECT_EQ(a.data()[4999], 42);
}

}  // namespace
}  // namespace strata
