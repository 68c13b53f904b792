#!/usr/bin/env bash
# Strata's encoder beside the PyTorch reference (sentence-transformers) on the same real passages
# (PostgreSQL's documentation, tools/make-passages.py) and batch sizes, one run, as ratios: one
# Strata row per matmul precision (f32, bf16, int8; those this CPU lacks are skipped).
#   bench/embed.sh [--backend=cpu|cuda] [--texts=256] [--batch_sizes=1,4,16,64,256]
#                  [--precisions=f32,bf16,int8]
# Env: PYTHON (an interpreter with torch + sentence-transformers; default python3),
#      BUILD (the build directory; default build), STRATA_SIMD (scalar|avx2|avx512: a lower ISA
#      tier for Strata; give PyTorch the same tier with ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA).
set -euo pipefail
cd "$(dirname "$0")/.."
backend=cpu texts=256 batches=1,4,16,64,256 precisions=f32,bf16,int8
for a in "$@"; do
  case "$a" in
    --backend=*) backend="${a#*=}" ;;
    --texts=*) texts="${a#*=}" ;;
    --batch_sizes=*) batches="${a#*=}" ;;
    --precisions=*) precisions="${a#*=}" ;;
    -h|--help) sed -n 2,9p "$0"; exit 0 ;;
    *) echo "embed.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
build="${BUILD:-build}"
python="${PYTHON:-python3}"
model="${STRATA_MODELS_DIR:-models}/all-minilm-l6-v2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tools/make-passages.py --out "$work/passages.jsonl" --limit "$texts"
[ "$backend" = cuda ] && precisions=f32
for p in ${precisions//,/ }; do
  if ! "$build/bin/strata-embed-bench" --model_dir="$model" --passages="$work/passages.jsonl" \
      --backend="$backend" --precision="$p" --texts="$texts" --batch_sizes="$batches" \
      --json="$work/strata-$p.json"; then
    echo "embed.sh: no $p row (see above)" >&2
    rm -f "$work/strata-$p.json"
  fi
done
peer_dtype=f32
[ "$backend" = cuda ] && peer_dtype=f16
"$python" bench/embed_peer.py --model_dir="$model" --passages="$work/passages.jsonl" \
  --device="$backend" --dtype="$peer_dtype" --texts="$texts" --batch_sizes="$batches" \
  --json="$work/peer.json"
python3 - "$work" <<'PY'
import glob, json, os, sys
load = lambda p: {r["batch"]: r for r in map(json.loads, open(p))}
peer = load(os.path.join(sys.argv[1], "peer.json"))
print(f"\n{'precision':>9} {'batch':>6} {'strata sent/s':>14} {'pytorch sent/s':>15} {'strata tok/s':>13} {'ratio':>7}")
for path in sorted(glob.glob(os.path.join(sys.argv[1], "strata-*.json"))):
    name = os.path.basename(path)[len("strata-"):-len(".json")]
    s = load(path)
    for b in sorted(s):
        rs, rp = s[b]["texts"] / s[b]["seconds"], peer[b]["texts"] / peer[b]["seconds"]
        print(f"{name:>9} {b:>6} {rs:>14.1f} {rp:>15.1f} {s[b]['tokens'] / s[b]['seconds']:>13.0f} {rs / rp:>6.2f}x")
PY
