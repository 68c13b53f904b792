// Helpers shared by Strata's tests: temp directories, the shared real data sets, recall.
#ifndef STRATA_TESTS_TEST_UTIL_H_
#define STRATA_TESTS_TEST_UTIL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "storage/vector_file.h"

namespace strata::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir final {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The real data sets beside the checkout (../shared/data), or $STRATA_SHARED_DATA. Empty when
// absent: tests that need them GTEST_SKIP with a message saying so.
[[nodiscard]] std::string SharedDataDir();

// Reads an IDX image file (gzip-compressed, as MNIST ships) into a uint8 set of rows*cols dims.
[[nodiscard]] std::optional<VectorSet> ReadMnistImages(const std::string& path, std::string* error);

// Rows [first, first + count) of `set` as a new set.
[[nodiscard]] VectorSet Slice(const VectorSet& set, uint64_t first, uint64_t count);

// Mean recall@k of `results` (one id list per query) against ground truth, counting ties at the
// k-th distance as hits (big-ann-benchmarks' rule).
[[nodiscard]] double RecallAtK(const GroundTruth& gt,
                               const std::vector<std::vector<uint32_t>>& results, uint32_t k);

}  // namespace strata::testing

#endif  // STRATA_TESTS_TEST_UTIL_H_
