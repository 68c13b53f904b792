// Strata's reader of RocksDB's write-ahead log format on arbitrary bytes: it must stay inside the
// input and count consistently.
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "storage/wal_scan.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const strata::WalScan s =
      strata::ScanWal(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (s.damaged && s.damaged_offset >= size) std::abort();
  if (!s.damaged && (s.batches_after != 0 || s.bytes_after != 0)) std::abort();
  if (s.bytes_after > size) std::abort();
  return 0;
}
