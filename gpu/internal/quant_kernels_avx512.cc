// GGUF block kernels for avx512 (flags in gpu/CMakeLists.txt).
// GCC 12 reports the AVX-512 intrinsics' own _mm512_undefined_* placeholders as (possibly)
// uninitialised (a false positive inside its headers).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define STRATA_QUANT_KERNELS_NS avx512
#define STRATA_QUANT_KERNELS_NAME "avx512"
#include "gpu/internal/quant_kernels.inc"
