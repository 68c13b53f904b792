#include "storage/rocks_info_log.h"

#include <string>

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
  // Below the log's level: not written.
  log->SetInfoLogLevel(rocksdb::InfoLogLevel::WARN_LEVEL);
  rocksdb::Log(rocksdb::InfoLogLevel::INFO_LEVEL, log, "an info line");
  EXPECT_EQ(Read(env, tmp.File("LOG")).find("an info line"), std::string::npos);
  // The next open keeps this run's log as LOG.old.
  log = RocksInfoLog::Open(&env, tmp.path());
  EXPECT_NE(Read(env, tmp.File("LOG.old")).find("line 4 of"), std::string::npos);
  EXPECT_EQ(Read(env, tmp.File("LOG")), "");
}

}  // namespace
}  // namespace strata
