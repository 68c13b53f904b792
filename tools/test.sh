#!/usr/bin/env bash
# Builds Strata with its tests (warnings are errors) and runs the whole suite. First the sanitizer
# passes (tools/sanitize.sh: clang with ASan+UBSan over the storage, index and tokenizer tests, then
# every fuzz target for a bounded number of inputs; tools/tsan.sh: ThreadSanitizer over the tests
# of Strata's threads and the end-to-end tests, servers included), then the gcc build and
# ctest. Tests that need the real data sets in ../shared/data skip with a message when it is
# absent; GPU tests (label `gpu`) skip without a device.
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache keys on paths relative to the checkout (and not on the build directory, even with -g),
# so a fresh clone elsewhere - CI's - reuses what an earlier build compiled.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true

tools/install-deps.sh
tools/sanitize.sh --runs="${STRATA_FUZZ_RUNS:-20000}"
tools/tsan.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSTRATA_BUILD_TESTS=ON -DSTRATA_WERROR=ON
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure -j"$(nproc)"
