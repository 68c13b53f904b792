#!/usr/bin/env bash
# Packs what the GPU checks need onto a machine that has a GPU but not Debian's -dev libraries:
#   gpu-bundle/bin/   gpu_cuda_test, strata-embed-bench, strata-decode-bench, strata-rag-bench,
#                     libstrata_cuda.so
#   gpu-bundle/lib/   the shared libraries they use that are not part of a bare system
#   gpu-bundle/models/all-minilm-l6-v2/   the model with its weights in fp16 (half the bytes)
# Run there from the repository root:
#   LD_LIBRARY_PATH=gpu-bundle/lib STRATA_MODELS_DIR=gpu-bundle/models gpu-bundle/bin/gpu_cuda_test
# (cuBLAS and the CUDA driver come from the GPU machine itself.) The decoder's GGUF is not packed
# (SmolLM2-135M-Instruct is 98 MB): copy models/smollm2-135m-instruct/ into gpu-bundle/models/
# there for the decoder's real-model test and benches.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build}"
out=gpu-bundle
rm -rf "$out" && mkdir -p "$out/bin" "$out/lib" "$out/models"
cmake --build "$build" -j"$(nproc)" --target gpu_cuda_test strata-embed-bench strata-decode-bench \
  strata-rag-bench strata_cuda
cp "$build/bin/gpu_cuda_test" "$build/bin/strata-embed-bench" "$build/bin/strata-decode-bench" \
  "$build/bin/strata-rag-bench" "$build/bin/libstrata_cuda.so" "$out/bin/"
# Everything ldd resolves except glibc, the C++ runtime and CUDA's own libraries.
for b in "$out"/bin/*; do
  ldd "$b" | awk '/=> \//{print $3}'
done | sort -u | grep -v -E '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libstdc\+\+|libgcc_s)\.so' |
  grep -v -E 'libcu(blas|blasLt|dart)\.so' | while read -r lib; do cp -L "$lib" "$out/lib/"; done
# The model, its weights converted to fp16 (the encoder reads F16 and converts as it loads).
src="${STRATA_MODELS_DIR:-models}/all-minilm-l6-v2"
dst="$out/models/all-minilm-l6-v2"
mkdir -p "$dst"
cp -r "$src"/*.json "$src"/vocab.txt "$dst/"
[ -d "$src/1_Pooling" ] && cp -r "$src/1_Pooling" "$dst/"
python3 - "$src/model.safetensors" "$dst/model.safetensors" <<'PY'
import json, struct, sys
import numpy as np
src, dst = sys.argv[1], sys.argv[2]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
out_header, chunks, offset = {}, [], 0
for name, t in header.items():
    if name == "__metadata__":
        out_header[name] = t
        continue
    b, e = t["data_offsets"]
    buf = data[b:e]
    if t["dtype"] == "F32":
        buf = np.frombuffer(buf, dtype="<f4").astype("<f2").tobytes()
        t = dict(t, dtype="F16")
    out_header[name] = dict(t, data_offsets=[offset, offset + len(buf)])
    chunks.append(buf)
    offset += len(buf)
h = json.dumps(out_header).encode()
h += b" " * (-len(h) % 8)
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))
PY
du -sh "$out" "$out"/*
