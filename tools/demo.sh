#!/usr/bin/env bash
# Strata's main job on a built-in default: installs what is needed, builds, generates a realistic
# 100K SIFT-like set with exact ground truth, builds a disk index (SPANN: heads in RAM, posting
# lists on disk read with io_uring), queries it and prints recall and latency.
# Data goes to $STRATA_DEMO_DIR (default: strata-data/demo in the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSTRATA_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target strata-gen strata-bench

data="${STRATA_DEMO_DIR:-strata-data/demo}/sift100k"
if [ ! -f "$data/gt.bin" ]; then
  build/bin/strata-gen --kind=sift --n=100000 --queries=1000 --out="$data"
fi
build/bin/strata-bench --base="$data/base.u8bin" --queries="$data/query.u8bin" \
  --gt="$data/gt.bin" --index="$data/index" --peers=none --postings=2,4,8,16,32 \
  --iops_seconds=1
