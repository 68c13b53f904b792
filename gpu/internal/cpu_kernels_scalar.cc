// The CPU backend's row kernels for scalar (flags in gpu/CMakeLists.txt).
#define STRATA_CPU_KERNELS_NS scalar
#define STRATA_CPU_KERNELS_NAME "scalar"
#include "gpu/internal/cpu_kernels.inc"
