#!/usr/bin/env bash
# Hybrid retrieval through the service, one corpus per run: starts strata-server with
# all-minilm-l6-v2, loads the passages with strata-load --text, then bench/hybrid_retrieval.py
# reports recall@1/5/10 and MRR@10 of dense, lexical and hybrid (both fusions) and their query
# latency (server time less the query's embedding) with 1 and 2 clients. --tune=N: N questions,
# drawn at random, teach the collection its hybrid weight (strata-load --questions, TuneHybrid)
# and are left out of the measurement, which runs on the others. --title: the passages' titles
# are indexed lexically too (kept in the payload JSON, the collection made with
# --text_fields=title).
#   bench/hybrid_retrieval.sh [--corpus=squad|postgres] [--latency_queries=N] [--tune=N] [--title]
# squad: SQuAD v1.1 dev from ../shared/data (or $STRATA_SHARED_DATA). postgres: PostgreSQL's
# documentation, its section titles as questions (tools/make-passages.py --questions; needs
# Debian's postgresql-doc-15).
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=squad latency=1000 tune=0 title=0
for a in "$@"; do
  case "$a" in
    --corpus=*) corpus="${a#*=}" ;;
    --latency_queries=*) latency="${a#*=}" ;;
    --tune=*) tune="${a#*=}" ;;
    --title) title=1 ;;
    -h|--help) sed -n 2,14p "$0"; exit 0 ;;
    *) echo "hybrid_retrieval.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
build="${BUILD:-build}"
model="${STRATA_MODELS_DIR:-models}/all-minilm-l6-v2"
work="$(mktemp -d)"
server=""
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
case "$corpus" in
  squad)
    data="${STRATA_SHARED_DATA:-../shared/data}"
    [ -f "$data/squad-v1.1-dev-passages.jsonl" ] || { echo "hybrid_retrieval.sh: no SQuAD files in $data" >&2; exit 1; }
    src="$data/squad-v1.1-dev-passages.jsonl" questions="$data/squad-v1.1-dev-questions.jsonl" ;;
  postgres)
    tools/make-passages.py --out "$work/src.jsonl" --questions "$work/questions.jsonl"
    src="$work/src.jsonl" questions="$work/questions.jsonl" ;;
  *) echo "hybrid_retrieval.sh: --corpus must be squad or postgres" >&2; exit 2 ;;
esac
# Rows become ids; the corpus' own id stays in the payload as source_id.
python3 - "$src" "$work/passages.jsonl" "$title" <<'PY'
import json, sys
with open(sys.argv[2], "w") as out:
    for i, line in enumerate(open(sys.argv[1], encoding="utf-8")):
        p = json.loads(line)
        row = {"id": i, "text": p["text"], "source_id": p["id"]}
        if sys.argv[3] == "1":
            row["title"] = p.get("title", "")
        out.write(json.dumps(row) + "\n")
PY
# --tune: a random sample of the questions (ids as loaded) to learn from; the rest to measure.
python3 - "$src" "$questions" "$tune" "$work" <<'PY'
import json, random, sys
src, questions, tune, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
row = {str(json.loads(l)["id"]): i for i, l in enumerate(open(src, encoding="utf-8"))}
qs = [json.loads(l) for l in open(questions, encoding="utf-8")]
picked = set(random.Random(7).sample(range(len(qs)), tune)) if tune else set()
with open(work + "/tune.jsonl", "w") as t, open(work + "/measure.jsonl", "w") as m:
    for i, q in enumerate(qs):
        if i in picked:
            ids = q["context_ids"] if "context_ids" in q else [q["context_id"]]
            t.write(json.dumps({"question": q["question"],
                                "relevant_ids": [row[str(x)] for x in ids if str(x) in row]}) + "\n")
        else:
            m.write(json.dumps(q) + "\n")
PY
load_flags=()
[ "$tune" != 0 ] && load_flags+=(--questions="$work/tune.jsonl")
[ "$title" = 1 ] && load_flags+=(--text_fields=title)
"$build/bin/strata-server" --data_dir="$work/data" --listen=127.0.0.1:0 --metrics_listen= \
  --ready_file="$work/port" --model_dir="$model" 2>"$work/server.log" &
server=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
addr="127.0.0.1:$(cat "$work/port")"
"$build/bin/strata-load" --server="$addr" --text="$work/passages.jsonl" --collection=passages \
  --checkpoint="$work/ckpt" "${load_flags[@]}" 2>"$work/load.log" || { cat "$work/load.log" >&2; exit 1; }
/usr/bin/python3 bench/hybrid_retrieval.py --server="$addr" --stubs="$build/python" \
  --collection=passages --passages="$work/passages.jsonl" --questions="$work/measure.jsonl" \
  --latency_queries="$latency"
grep "lexical index of" "$work/server.log" || true
