// The bf16 and int8 GEMM microkernels on AMX tiles (flags in gpu/CMakeLists.txt). Eight tiles of
// 16 rows x 64 bytes: four accumulate a 32 x 32 block of c (fp32 or int32), two hold 16 rows of
// a, two hold 16 columns of the panel. The panel layouts (gemm_kernels.h) are already the tiles'
// pair/quad-interleaved form, so a panel is loaded as it lies, 128 bytes a row apart.
//
// Needs from the caller: k a multiple of 32 (bf16) or 64 (int8), and `a` readable to a multiple
// of 32 rows (GemmKernel::row_align).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "gpu/internal/gemm_kernels.h"

namespace strata::gpu::cpu::amx {
namespace {

// The LDTILECFG operand (palette 1).
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tile configuration is per thread; every tile here is 16 x 64 bytes, for both precisions, so a
// thread configures once and keeps it (these kernels are the process's only AMX code). Loading the
// configuration on every call, and releasing the tiles after it, was measured: on this VM some
// products then ran 50-1000x slower (0.3-25 GFLOP/s instead of 400-1,700), so the state stays.
thread_local bool configured = false;

void ConfigureThread() {
  if (configured) return;
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
  configured = true;
}

constexpr int kBlock = 32;

// Stores the four accumulator tiles (a 32 x 32 block) into c: directly when the block is whole,
// else through a buffer so nothing past `rows` x `cols` is written.
template <typename C>
void StoreBlock(C* c, int64_t ldc, int64_t rows, int cols) {
  if (rows >= kBlock && cols == kBlock) {
    const int64_t stride = ldc * static_cast<int64_t>(sizeof(C));
    _tile_stored(0, c, stride);
    _tile_stored(1, c + 16, stride);
    _tile_stored(2, c + 16 * ldc, stride);
    _tile_stored(3, c + 16 * ldc + 16, stride);
    return;
  }
  alignas(64) C tmp[kBlock * kBlock];
  constexpr int64_t kStride = kBlock * sizeof(C);
  _tile_stored(0, tmp, kStride);
  _tile_stored(1, tmp + 16, kStride);
  _tile_stored(2, tmp + 16 * kBlock, kStride);
  _tile_stored(3, tmp + 16 * kBlock + 16, kStride);
  for (int64_t r = 0; r < std::min<int64_t>(rows, kBlock); ++r) {
    std::copy_n(tmp + r * kBlock, cols, c + r * ldc);
  }
}

// The two precisions differ only in their element types and dot-product instruction: a tile row
// is 64 bytes either way (32 bf16 pairs' halves or 64 int8 values of k), and a panel's columns
// 16-31 start 64 bytes into each 128-byte row.
struct Bf16Tiles {
  using A = uint16_t;
  using B = uint16_t;
  using C = float;
  static void Dot() {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
};
struct Int8Tiles {
  using A = uint8_t;
  using B = int8_t;
  using C = int32_t;
  static void Dot() {
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
};

template <class T>
void GemmTiles(const typename T::A* a, int64_t lda, int64_t rows, const typename T::B* panel,
               int64_t k, typename T::C* c, int64_t ldc, int cols) {
  ConfigureThread();
  constexpr int64_t kStep = 64 / sizeof(typename T::A);  // k per tile row
  const int64_t a_stride = lda * static_cast<int64_t>(sizeof(typename T::A));
  for (int64_t r = 0; r < rows; r += kBlock) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const typename T::A* a0 = a + r * lda;
    for (int64_t p = 0; p < k; p += kStep) {
      const auto* b = reinterpret_cast<const char*>(panel + p * kPanelCols);
      _tile_loadd(4, a0 + p, a_stride);
      _tile_loadd(5, a0 + 16 * lda + p, a_stride);
      _tile_loadd(6, b, 128);
      _tile_loadd(7, b + 64, 128);
      T::Dot();
    }
    StoreBlock(c + r * ldc, ldc, rows - r, cols);
  }
}

}  // namespace

bool RequestPermission() {
#if defined(__linux__)
  // ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA (Linux 5.16+); once per process.
  constexpr int kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  static const bool granted = syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  return granted;
#else
  return false;
#endif
}

Bf16Kernel Bf16() { return &GemmTiles<Bf16Tiles>; }
Int8Kernel Int8() { return &GemmTiles<Int8Tiles>; }

}  // namespace strata::gpu::cpu::amx
