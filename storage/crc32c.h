// CRC-32C (Castagnoli), the checksum of every extent Strata writes. Uses carry-less
// multiplication on zmm registers (VPCLMULQDQ with AVX-512) for runs of 1 KiB or more, the SSE4.2
// crc32 instruction, or a table-driven portable loop, whichever the CPU has (checked once at run
// time); all give the same value. No Debian package ships crc32c, hence our own.
#ifndef STRATA_STORAGE_CRC32C_H_
#define STRATA_STORAGE_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace strata::crc32c {

// Extends `crc` (0 to start) over `n` bytes at `data`.
[[nodiscard]] uint32_t Extend(uint32_t crc, const void* data, size_t n);
[[nodiscard]] inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }

// The portable implementation and the crc32 instruction's alone, exposed so tests can compare
// them with Extend's paths.
[[nodiscard]] uint32_t ExtendPortable(uint32_t crc, const void* data, size_t n);
[[nodiscard]] uint32_t ExtendHardwareOnly(uint32_t crc, const void* data, size_t n);
[[nodiscard]] bool HardwareAvailable();
// Whether Extend folds runs of 1 KiB or more with VPCLMULQDQ.
[[nodiscard]] bool FoldAvailable();

}  // namespace strata::crc32c

#endif  // STRATA_STORAGE_CRC32C_H_
