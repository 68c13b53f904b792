// A byte array in a mapped scratch file (storage/mapped_arena.h): bytes kept across growth that
// moves the mapping, disk space allocated before it is mapped, shrinking, the file removed with
// the arena, and a creation the Env fails.
#include "storage/mapped_arena.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstring>

#include "storage/fault_injection_env.h"
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
    // Many doublings, each a remap: the first bytes are kept, the new ones read as zeros.
    ASSERT_TRUE(a.Reserve(uint64_t{32} << 20).ok());
    for (uint64_t i = 0; i < filled; ++i) ASSERT_EQ(a.data()[i], 0x5a) << i;
    EXPECT_EQ(a.data()[filled], 0);
    a.data()[(uint64_t{32} << 20) - 1] = 7;
    // The stores are the file's (a shared mapping).
    absl::StatusOr<uint64_t> size = FileSize(path);
    ASSERT_TRUE(size.ok());
    EXPECT_EQ(*size, a.file_bytes());
    std::string head(16, '\0');
    {
      absl::StatusOr<ScopedFd> fd = OpenFile(path, O_RDONLY);
      ASSERT_TRUE(fd.ok());
      ASSERT_TRUE(PReadFull(fd->get(), head.data(), head.size(), 0, "arena").ok());
    }
    EXPECT_EQ(head, std::string(16, '\x5a'));
    const uint8_t* before = a.data();
    a.ShrinkTo(filled);
    EXPECT_EQ(a.data(), before);  // kept in place
    EXPECT_EQ(a.capacity(), filled);
    EXPECT_EQ(a.file_bytes(), filled);
    EXPECT_EQ(a.data()[filled - 1], 0x5a);
    a.ShrinkTo(0);
    EXPECT_EQ(a.capacity(), 0u);
    EXPECT_EQ(a.file_bytes(), 0u);
    ASSERT_TRUE(a.Reserve(10).ok());
    EXPECT_EQ(a.data()[0], 0);  // a shrunk file's bytes are gone
  }
  EXPECT_FALSE(Env::Default()->FileExists(path));  // removed with the arena
}

TEST(MappedArena, ReplacesALeftoverAndReportsAFailedCreation) {
  testing::TempDir dir;
  const std::string path = dir.File("arena");
  ASSERT_TRUE(WriteFileAtomic(*Env::Default(), path, std::string("left over by a crash")).ok());
  {
    absl::StatusOr<std::unique_ptr<MappedArena>> made = MappedArena::Create(*Env::Default(), path);
    ASSERT_TRUE(made.ok()) << made.status();
    EXPECT_EQ((*made)->file_bytes(), 0u);
    absl::StatusOr<uint64_t> size = FileSize(path);
    ASSERT_TRUE(size.ok());
    EXPECT_EQ(*size, 0u);
  }
  FaultInjectionEnv env;
  env.FailNth(FaultInjectionEnv::Op::kCreate, 0);
  absl::StatusOr<std::unique_ptr<MappedArena>> failed = MappedArena::Create(env, path);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("injected"), std::string::npos) << failed.status();
}

// An allocation the disk refuses (a full disk, here injected) leaves the arena as it was.
TEST(MappedArena, AFailedAllocationChangesNothing) {
  testing::TempDir dir;
  FaultInjectionEnv env;
  absl::StatusOr<std::unique_ptr<MappedArena>> made = MappedArena::Create(env, dir.File("arena"));
  ASSERT_TRUE(made.ok()) << made.status();
  MappedArena& a = **made;
  ASSERT_TRUE(a.Reserve(5000).ok());
  a.data()[4999] = 42;
  const uint64_t capacity = a.capacity();
  env.FailNth(FaultInjectionEnv::Op::kAppend, 0);
  EXPECT_FALSE(a.Reserve(capacity + 1).ok());
  EXPECT_EQ(a.capacity(), capacity);
  EXPECT_EQ(a.file_bytes(), capacity);
  EXPECT_EQ(a.data()[4999], 42);
  ASSERT_TRUE(a.Reserve(capacity + 1).ok());
  EXPECT_GT(a.capacity(), capacity);
  EXPECT_EQ(a.data()[4999], 42);
}

}  // namespace
}  // namespace strata
