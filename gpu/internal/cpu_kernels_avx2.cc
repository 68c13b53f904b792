// The CPU backend's row kernels for avx2 (flags in gpu/CMakeLists.txt).
#define STRATA_CPU_KERNELS_NS avx2
#define STRATA_CPU_KERNELS_NAME "avx2"
#include "gpu/internal/cpu_kernels.inc"
