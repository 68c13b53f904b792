#!/usr/bin/env bash
# Accuracy of each matmul precision: the worst and mean cosine between Strata's embeddings and
# sentence-transformers' f32 ones over real passages (PostgreSQL's documentation).
#   bench/embed_accuracy.sh [--texts=1000] [--precisions=f32,bf16,int8]
# Env: PYTHON (an interpreter with torch + sentence-transformers), BUILD (default build).
set -euo pipefail
cd "$(dirname "$0")/.."
texts=1000 precisions=f32,bf16,int8
for a in "$@"; do
  case "$a" in
    --texts=*) texts="${a#*=}" ;;
    --precisions=*) precisions="${a#*=}" ;;
    -h|--help) sed -n 2,5p "$0"; exit 0 ;;
    *) echo "embed_accuracy.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
build="${BUILD:-build}"
model="${STRATA_MODELS_DIR:-models}/all-minilm-l6-v2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tools/make-passages.py --out "$work/passages.jsonl" --limit "$texts"
dumps=()
for p in ${precisions//,/ }; do
  if "$build/bin/strata-embed-bench" --model_dir="$model" --passages="$work/passages.jsonl" \
      --backend=cpu --precision="$p" --texts="$texts" --batch_sizes=64 \
      --dump="$work/$p.f32" >/dev/null; then
    dumps+=("$p=$work/$p.f32")
  else
    echo "embed_accuracy.sh: no $p row (see above)" >&2
  fi
done
[ "${#dumps[@]}" -gt 0 ] || { echo "embed_accuracy.sh: no precision ran" >&2; exit 1; }
"${PYTHON:-python3}" bench/embed_accuracy.py --model_dir="$model" \
  --passages="$work/passages.jsonl" "${dumps[@]}"
