// GGUF block kernels for avx2 (flags in gpu/CMakeLists.txt).
#define STRATA_QUANT_KERNELS_NS avx2
#define STRATA_QUANT_KERNELS_NAME "avx2"
#include "gpu/internal/quant_kernels.inc"
