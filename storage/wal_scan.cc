#include "storage/wal_scan.h"

#include "storage/crc32c.h"

namespace strata {
namespace {

constexpr size_t kBlock = 32768;
constexpr size_t kHeader = 7;
constexpr uint32_t kMaskDelta = 0xa282ead8u;

uint32_t Unmask(uint32_t masked) {
  const uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

uint32_t Le32(const char* p) {
  return static_cast<uint32_t>(static_cast<uint8_t>(p[0])) |
         static_cast<uint32_t>(static_cast<uint8_t>(p[1])) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(p[2])) << 16 |
         static_cast<uint32_t>(static_cast<uint8_t>(p[3])) << 24;
}

// The record at `off` when intact: its type, and the offset after it. False when damaged.
bool ReadRecord(absl::string_view f, size_t off, uint8_t* type, size_t* next) {
  const size_t block_left = kBlock - off % kBlock;
  if (block_left < kHeader || off + kHeader > f.size()) return false;
  const size_t len =
      static_cast<uint8_t>(f[off + 4]) | static_cast<size_t>(static_cast<uint8_t>(f[off + 5])) << 8;
  *type = static_cast<uint8_t>(f[off + 6]);
  if (kHeader + len > block_left || off + kHeader + len > f.size() || *type > 4) return false;
  if (*type != 0) {
    const uint32_t crc =
        crc32c::Extend(crc32c::Value(f.data() + off + 6, 1), f.data() + off + 7, len);
    if (crc != Unmask(Le32(f.data() + off))) return false;
  }
  *next = off + kHeader + len;
  return true;
}

}  // namespace

WalScan ScanWal(absl::string_view f) {
  WalScan out;
  size_t off = 0;
  while (off < f.size()) {
    if (kBlock - off % kBlock < kHeader) {  // trailer of a block
      off += kBlock - off % kBlock;
      continue;
    }
    uint8_t type;
    size_t next;
    if (!ReadRecord(f, off, &type, &next)) {
      if (!out.damaged) {
        out.damaged = true;
        out.damaged_offset = off;
        // Its extent by its own header, if the header is there at all.
        size_t end = f.size();
        if (off + kHeader <= f.size()) {
          end = off + kHeader +
                (static_cast<uint8_t>(f[off + 4]) |
                 static_cast<size_t>(static_cast<uint8_t>(f[off + 5])) << 8);
        }
        out.damage_at_tail = end >= f.size();
      }
      // Resynchronise at the next block: records never straddle a block header.
      off += kBlock - off % kBlock;
      continue;
    }
    if (type == 1 || type == 2) {
      if (out.damaged) {
        ++out.batches_after;
        out.bytes_after += next - off;
      } else {
        ++out.batches;
      }
    } else if (out.damaged && (type == 3 || type == 4)) {
      out.bytes_after += next - off;
    }
    if (type == 0 && next == off + kHeader) {  // zero padding: skip the rest of the block
      next = off + (kBlock - off % kBlock);
    }
    off = next;
  }
  return out;
}

}  // namespace strata
