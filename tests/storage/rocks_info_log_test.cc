#include "storage/rocks_info_log.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/fault_injection_env.h"
#include "tests/test_util.h"

namespace strata {
namespace {

std::string Read(Env& env, const std::string& path) {
  absl::StatusOr<std::string> s = env.ReadFile(path);
  return s.ok() ? *s : std::string();
}

// A line that cannot be written (a full disk) is dropped and counted, and the next ones are
// written: never the abort of RocksDB's own file logger on its next line (rocks_info_log.h).
TEST(RocksInfoLog, ALineThatCannotBeWrittenIsDroppedAndTheNextOnesWritten) {
  testing::TempDir tmp;
  FaultInjectionEnv env;
  std::shared_ptr<RocksInfoLog> log = RocksInfoLog::Open(&env, tmp.path());
  env.FailNth(FaultInjectionEnv::Op::kAppend, 1, 2);  // the second and third lines
  for (int i = 0; i < 5; ++i) {
    rocksdb::Log(rocksdb::InfoLogLevel::INFO_LEVEL, log, "line %d of the test", i);
  }
  EXPECT_EQ(log->dropped(), 2u);
  const std::string text = Read(env, tmp.File("LOG"));
  for (int i : {0, 3, 4}) {
    EXPECT_NE(text.find(absl::StrCat("line ", i, " of")), std::string::npos) << text;
  }
  for (int i : {1, 2}) {
    EXPECT_EQ(text.find(absl::StrCat("line ", i, " of")), std::string::npos) << text;
  }
  EXPECT_NE(text.find("(2 lines before this one were dropped)"), std::string::npos) << text;
  // A line longer than the first buffer, whole.
  const std::string longer(5000, 'x');
  rocksdb::Log(rocksdb::InfoLogLevel::INFO_LEVEL, log, "%s!", longer.c_str());
  EXPECT_NE(Read(env, tmp.File("LOG")).find(longer + "!"), std::string::npos);
  // Below the log's level: not written.
  log->SetInfoLogLevel(rocksdb::InfoLogLevel::WARN_LEVEL);
  rocksdb::Log(rocksdb::InfoLogLevel::INFO_LEVEL, log, "an info line");
  EXPECT_EQ(Read(env, tmp.File("LOG")).find("an info line"), std::string::npos);
  // The next open keeps this run's log as LOG.old.<time>, and a new LOG; the newest kKeepOld of
  // those are kept.
  log.reset();
  std::vector<std::string> old;
  for (int open = 0; open < RocksInfoLog::kKeepOld + 2; ++open) {
    log = RocksInfoLog::Open(&env, tmp.path());
    rocksdb::Log(rocksdb::InfoLogLevel::INFO_LEVEL, log, "run %d", open);
  }
  const absl::StatusOr<std::vector<std::string>> children = env.GetChildren(tmp.path());
  ASSERT_TRUE(children.ok()) << children.status();
  for (const std::string& c : *children) {
    if (c.rfind("LOG.old.", 0) == 0) old.push_back(c);
  }
  EXPECT_EQ(old.size(), static_cast<size_t>(RocksInfoLog::kKeepOld));
  ASSERT_TRUE(env.FileExists(tmp.File("LOG")));
  EXPECT_NE(Read(env, tmp.File("LOG")).find(absl::StrCat("run ", RocksInfoLog::kKeepOld + 1)),
            std::string::npos);
}

}  // namespace
}  // namespace strata
