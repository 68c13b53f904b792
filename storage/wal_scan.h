// Reads RocksDB write-ahead log files on their own, to say how much a point-in-time recovery
// would drop. RocksDB reports that it cut a log at a damaged record, but not what lay beyond the
// cut; this scanner counts the intact write batches after the first damaged record.
//
// Format (RocksDB's log_format.h, legacy records; Strata never enables log recycling): the file
// is a sequence of 32 KiB blocks; a record is a 7-byte header - masked crc32c (4 bytes, little
// endian) of the type byte and the payload, payload length (2 bytes), type (1 byte: 1 full,
// 2 first, 3 middle, 4 last fragment, 0 padding) - and its payload; a header never straddles a
// block (a block's last < 7 bytes are zero padding). One write batch is one full record or one
// first..last chain.
#ifndef STRATA_STORAGE_WAL_SCAN_H_
#define STRATA_STORAGE_WAL_SCAN_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace strata {

struct WalScan {
  uint64_t batches = 0;         // intact write batches before the first damaged record
  bool damaged = false;         // a record failed its checksum or its bounds
  uint64_t damaged_offset = 0;  // where
  // The damaged record is the file's last: cut short, or reaching the end exactly - what a
  // crash in the middle of an (unacknowledged) write leaves.
  bool damage_at_tail = false;
  // Intact write batches (full or first records) and bytes after the damage: what a recovery to
  // the point of the damage drops. A damaged record at the very end (a torn tail) drops none.
  uint64_t batches_after = 0;
  uint64_t bytes_after = 0;
};

// Scans the log `contents` (a whole .log file).
[[nodiscard]] WalScan ScanWal(absl::string_view contents);

}  // namespace strata

#endif  // STRATA_STORAGE_WAL_SCAN_H_
