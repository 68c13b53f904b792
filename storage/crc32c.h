// CRC-32C (Castagnoli), the checksum of every extent Strata writes. Uses the SSE4.2 crc32
// instruction when the CPU has it (checked once at run time), else a table-driven portable loop;
// both give the same value. No Debian package ships crc32c, hence our own.
#ifndef STRATA_STORAGE_CRC32C_H_
#define STRATA_STORAGE_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace strata::crc32c {

// Extends `crc` (0 to start) over `n` bytes at `data`.
[[nodiscard]] uint32_t Extend(uint32_t crc, const void* data, size_t n);
[[nodiscard]] inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }

// The portable implementation, exposed so tests can compare it with the hardware path.
[[nodiscard]] uint32_t ExtendPortable(uint32_t crc, const void* data, size_t n);
[[nodiscard]] bool HardwareAvailable();

}  // namespace strata::crc32c

#endif  // STRATA_STORAGE_CRC32C_H_
