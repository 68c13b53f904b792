// GGUF block kernels for scalar (flags in gpu/CMakeLists.txt).
#define STRATA_QUANT_KERNELS_NS scalar
#define STRATA_QUANT_KERNELS_NAME "scalar"
#include "gpu/internal/quant_kernels.inc"
