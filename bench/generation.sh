#!/usr/bin/env bash
# Generate (RAG) speed through the service, and llama.cpp's decode speed on the same GGUF beside
# it: starts strata-server with all-minilm-l6-v2 and SmolLM2-135M-Instruct, loads SQuAD v1.1 dev's
# passages (../shared/data or $STRATA_SHARED_DATA) with strata-load --text, then
#   bench/generation_load.py   TTFT and tokens/s at 1 / 4 / 16 concurrent requests (cold and warm
#                              passage KV cache; full prefill as the reference), 8 passages each;
#   strata-decode-bench        the decoder alone: prefill and decode tokens/s at batch 1;
#   bench/llamacpp_peer.py     llama.cpp (the xllamacpp wheel) on the same file, same lengths,
#                              when PYTHON_LLAMACPP names a python that has xllamacpp.
#   bench/generation.sh [--requests=16] [--levels=1,4,16] [--k=8] [--max_tokens=64]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=16 levels=1,4,16 k=8 max_tokens=64
for a in "$@"; do
  case "$a" in
    --requests=*) requests="${a#*=}" ;;
    --levels=*) levels="${a#*=}" ;;
    --k=*) k="${a#*=}" ;;
    --max_tokens=*) max_tokens="${a#*=}" ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "generation.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
build="${BUILD:-build}"
models="${STRATA_MODELS_DIR:-models}"
decoder="$models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
data="${STRATA_SHARED_DATA:-../shared/data}"
[ -f "$data/squad-v1.1-dev-passages.jsonl" ] || { echo "generation.sh: no SQuAD files in $data" >&2; exit 1; }
[ -f "$decoder" ] || { echo "generation.sh: no $decoder (tools/fetch-models.sh)" >&2; exit 1; }
cmake --build "$build" --target strata-server strata-load strata-decode-bench strata_python_client >/dev/null
work="$(mktemp -d)"
server=""
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
python3 - "$data/squad-v1.1-dev-passages.jsonl" "$work/passages.jsonl" <<'PY'
import json, sys
with open(sys.argv[2], "w") as out:
    for i, line in enumerate(open(sys.argv[1], encoding="utf-8")):
        p = json.loads(line)
        out.write(json.dumps({"id": i, "text": p["text"], "title": p.get("title", "").replace("_", " ")}) + "\n")
PY
"$build/bin/strata-server" --data_dir="$work/data" --listen=127.0.0.1:0 --metrics_listen= \
  --ready_file="$work/port" --model_dir="$models/all-minilm-l6-v2" --decoder="$decoder" \
  --kv_cache_ram_mb=4096 2>"$work/server.log" &
server=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
addr="127.0.0.1:$(cat "$work/port")"
"$build/bin/strata-load" --server="$addr" --text="$work/passages.jsonl" --collection=squad >/dev/null
echo "== strata-server: Generate at ${levels} concurrent requests, ${requests} each, k=${k}"
/usr/bin/python3 bench/generation_load.py --server="$addr" --stubs="$build/python" \
  --questions="$data/squad-v1.1-dev-questions.jsonl" --levels="$levels" --requests="$requests" \
  --k="$k" --max_tokens="$max_tokens"
kill $server; wait $server 2>/dev/null || true; server=""
echo "== the decoder alone, batch 1 (strata-decode-bench): int8 activations (default), then fp32"
for ctx in 32 1500; do
  for int8 in true false; do
    "$build/bin/strata-decode-bench" --model="$decoder" --context=$ctx --tokens=128 --ways=step \
      --int8_activations=$int8 2>/dev/null
  done
done
if [ -n "${PYTHON_LLAMACPP:-}" ]; then
  echo "== llama.cpp (xllamacpp), same file, 2 threads"
  for ctx in 32 1500; do "$PYTHON_LLAMACPP" bench/llamacpp_peer.py --model="$decoder" --context=$ctx --tokens=128; done
else
  echo "== llama.cpp: skipped (set PYTHON_LLAMACPP to a python with the xllamacpp wheel)"
fi
