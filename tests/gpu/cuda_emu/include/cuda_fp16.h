// Test-only stand-in for the CUDA header of this name: see tests/gpu/cuda_emu/cuda_emu.h.
#include "tests/gpu/cuda_emu/cuda_emu.h"
