// The CPU backend's row kernels for avx512 (flags in gpu/CMakeLists.txt).
#define STRATA_CPU_KERNELS_NS avx512
#define STRATA_CPU_KERNELS_NAME "avx512"
#include "gpu/internal/cpu_kernels.inc"
