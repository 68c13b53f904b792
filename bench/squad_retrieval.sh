#!/usr/bin/env bash
# Retrieval quality of the text path on SQuAD v1.1 dev (../shared/data, or $STRATA_SHARED_DATA):
# starts strata-server with all-minilm-l6-v2, loads the 2,067 passages with strata-load --text,
# asks the questions by text and reports recall@1/5/10 of the gold passage (bench/squad_retrieval.py).
#   bench/squad_retrieval.sh [--limit=N questions] [--precision=auto|f32|bf16|int8]
#   PYTHON=... adds the sentence-transformers row; --precision is the server's --embed_precision
set -euo pipefail
cd "$(dirname "$0")/.."
limit=0 precision=auto
for a in "$@"; do
  case "$a" in
    --limit=*) limit="${a#*=}" ;;
    --precision=*) precision="${a#*=}" ;;
    -h|--help) sed -n 2,7p "$0"; exit 0 ;;
    *) echo "squad_retrieval.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
data="${STRATA_SHARED_DATA:-../shared/data}"
[ -f "$data/squad-v1.1-dev-passages.jsonl" ] || { echo "squad_retrieval.sh: no SQuAD files in $data" >&2; exit 1; }
build="${BUILD:-build}"
model="${STRATA_MODELS_DIR:-models}/all-minilm-l6-v2"
work="$(mktemp -d)"
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
# SQuAD's ids are strings: rows become ids, the SQuAD id stays in the payload.
python3 - "$data/squad-v1.1-dev-passages.jsonl" "$work/passages.jsonl" <<'PY'
import json, sys
with open(sys.argv[2], "w") as out:
    for i, line in enumerate(open(sys.argv[1], encoding="utf-8")):
        p = json.loads(line)
        out.write(json.dumps({"id": i, "text": p["text"], "title": p["title"], "squad_id": p["id"]}) + "\n")
PY
"$build/bin/strata-server" --data_dir="$work/data" --listen=127.0.0.1:0 --metrics_listen= \
  --ready_file="$work/port" --model_dir="$model" --embed_precision="$precision" \
  2>"$work/server.log" &
server=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
addr="127.0.0.1:$(cat "$work/port")"
"$build/bin/strata-load" --server="$addr" --text="$work/passages.jsonl" --collection=squad \
  --checkpoint="$work/ckpt"
/usr/bin/python3 bench/squad_retrieval.py --server="$addr" --stubs="$build/python" \
  --passages="$work/passages.jsonl" --questions="$data/squad-v1.1-dev-questions.jsonl" \
  --limit="$limit" --model_dir="$model" ${PYTHON:+--reference_python="$PYTHON"}
