// GGUF block kernels for avx512 (flags in gpu/CMakeLists.txt).
#define STRATA_QUANT_KERNELS_NS avx512
#define STRATA_QUANT_KERNELS_NAME "avx512"
#include "gpu/internal/quant_kernels.inc"
