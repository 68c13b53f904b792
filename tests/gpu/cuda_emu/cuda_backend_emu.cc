// The CUDA backend's own source, compiled as C++ against the CUDA emulator: the stand-in headers
// in include/ come first on this target's include path (see tests/CMakeLists.txt).
#include "gpu/internal/cuda_backend.cu"  // NOLINT(bugprone-suspicious-include)
