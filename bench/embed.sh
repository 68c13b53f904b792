#!/usr/bin/env bash
# Strata's encoder beside the PyTorch reference (sentence-transformers) on the same real passages
# (PostgreSQL's documentation, tools/make-passages.py) and batch sizes, one run, as ratios.
#   bench/embed.sh [--backend=cpu|cuda] [--texts=256] [--batch_sizes=1,4,16,64,256]
# Env: PYTHON (an interpreter with torch + sentence-transformers; default python3),
#      BUILD (the build directory; default build).
set -euo pipefail
cd "$(dirname "$0")/.."
backend=cpu texts=256 batches=1,4,16,64,256
for a in "$@"; do
  case "$a" in
    --backend=*) backend="${a#*=}" ;;
    --texts=*) texts="${a#*=}" ;;
    --batch_sizes=*) batches="${a#*=}" ;;
    -h|--help) sed -n 2,6p "$0"; exit 0 ;;
    *) echo "embed.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
build="${BUILD:-build}"
python="${PYTHON:-python3}"
model="${STRATA_MODELS_DIR:-models}/all-minilm-l6-v2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tools/make-passages.py --out "$work/passages.jsonl" --limit "$texts"
"$build/bin/strata-embed-bench" --model_dir="$model" --passages="$work/passages.jsonl" \
  --backend="$backend" --texts="$texts" --batch_sizes="$batches" --json="$work/strata.json"
peer_dtype=f32
[ "$backend" = cuda ] && peer_dtype=f16
"$python" bench/embed_peer.py --model_dir="$model" --passages="$work/passages.jsonl" \
  --device="$backend" --dtype="$peer_dtype" --texts="$texts" --batch_sizes="$batches" \
  --json="$work/peer.json"
python3 - "$work/strata.json" "$work/peer.json" <<'PY'
import json, sys
load = lambda p: {r["batch"]: r for r in map(json.loads, open(p))}
s, p = load(sys.argv[1]), load(sys.argv[2])
print(f"\n{'batch':>6} {'strata sent/s':>14} {'pytorch sent/s':>15} {'strata tok/s':>13} {'ratio':>7}")
for b in sorted(s):
    rs, rp = s[b]["texts"] / s[b]["seconds"], p[b]["texts"] / p[b]["seconds"]
    print(f"{b:>6} {rs:>14.1f} {rp:>15.1f} {s[b]['tokens'] / s[b]['seconds']:>13.0f} {rs / rp:>6.2f}x")
PY
