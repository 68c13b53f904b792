#!/usr/bin/env bash
# Strata's main job on a built-in default: installs what is needed, builds, generates a realistic
# 100K SIFT-like set with exact ground truth, starts strata-server on 127.0.0.1, loads the set
# through strata-load (online, over gRPC), searches it with strata-cli (a few queries shown, then
# recall@10 and latency over 1,000); then the text path: PostgreSQL's documentation (Debian's
# postgresql-doc-15) split into passages, embedded by the server's all-MiniLM-L6-v2 as strata-load
# streams them, and questions asked as text (hybrid: dense and BM25 fused; then lexical alone);
# then questions answered from those passages (RAG: the server's SmolLM2-135M-Instruct reads the
# retrieved passages, whose keys and values it computes once and caches, and streams an answer with
# its sources; asked twice, to show the cache). Prints the server's statistics and stops it cleanly.
# STRATA_DEMO_PASSAGES (default 0 = all ~6,000 passages) sets how many passages are embedded.
# Data goes to $STRATA_DEMO_DIR (default: strata-data/demo in the checkout); the server's data
# directory there is recreated on every run.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
# (strata-server also builds the CUDA module, libstrata_cuda.so, when nvcc is there.)
cmake --build build -j"$(nproc)" --target strata-gen strata-server strata-load strata-cli

demo="${STRATA_DEMO_DIR:-strata-data/demo}"
data="$demo/sift100k"
if [ ! -f "$data/gt.bin" ]; then
  build/bin/strata-gen --kind=sift --n=100000 --queries=1000 --out="$data"
fi

server_dir="$demo/server"
rm -rf "$server_dir"
mkdir -p "$server_dir"
model="${STRATA_MODELS_DIR:-models}/all-minilm-l6-v2"
decoder="${STRATA_MODELS_DIR:-models}/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
build/bin/strata-server --data_dir="$server_dir/data" --listen=127.0.0.1:0 \
  --metrics_listen= --ready_file="$server_dir/port" --model_dir="$model" --decoder="$decoder" \
  2>"$server_dir/server.log" &
server_pid=$!
trap 'kill -TERM $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$server_dir/port" ] && break; sleep 0.1; done
[ -s "$server_dir/port" ] || { cat "$server_dir/server.log"; echo "demo: server did not start" >&2; exit 1; }
addr="127.0.0.1:$(cat "$server_dir/port")"
echo "== strata-server on $addr (log: $server_dir/server.log)"

cli() { build/bin/strata-cli --server="$addr" "$@"; }
cli health
build/bin/strata-load --server="$addr" --input="$data/base.u8bin" --collection=sift100k \
  --checkpoint="$server_dir/load.ckpt"
cli describe sift100k
echo "== three queries (nearest first)"
cli search sift100k --query_file="$data/query.u8bin" --row=0 --k=5
cli get sift100k "$(cli search sift100k --query_file="$data/query.u8bin" --row=1 --k=1 | awk 'NR==1{print $3}')" --with_vector | cut -c1-100
echo "== all 1,000 queries against the exact ground truth"
echo "   (the collection's default budget, tuned when its index was built; then two fixed ones)"
cli search sift100k --query_file="$data/query.u8bin" --gt="$data/gt.bin" --k=10
cli search sift100k --query_file="$data/query.u8bin" --gt="$data/gt.bin" --k=10 --postings=8
cli search sift100k --query_file="$data/query.u8bin" --gt="$data/gt.bin" --k=10 --postings=32

echo "== text: PostgreSQL's documentation as passages, embedded by the server as they load"
passages="$demo/postgresql-passages.jsonl"
n_passages="${STRATA_DEMO_PASSAGES:-0}"
tools/make-passages.py --out="$passages" --limit="$n_passages"
build/bin/strata-load --server="$addr" --text="$passages" --collection=pgdocs \
  --checkpoint="$server_dir/text.ckpt"
for q in "How do I reclaim disk space taken by deleted rows?" \
         "Which function converts a timestamp to a different time zone?"; do
  echo "== question (hybrid: dense and BM25, fused): $q"
  cli search pgdocs --text="$q" --k=3 --with_payload
done
echo "== the same question, lexical only (BM25 over the passages' text)"
cli search pgdocs --text="Which function converts a timestamp to a different time zone?" --k=3 \
  --mode=lexical
echo "== RAG: answered from the passages by the server's decoder, streamed, with sources"
cli ask pgdocs "How do I reclaim disk space taken by deleted rows?" --max_tokens=120
echo "== the same question again: the passages' keys and values come from the cache (see TTFT)"
cli ask pgdocs "How do I reclaim disk space taken by deleted rows?" --max_tokens=120
cli ask pgdocs "Which function converts a timestamp to a different time zone?" --max_tokens=120
cli stats
echo "== stopping the server (SIGTERM)"
kill -TERM $server_pid
wait $server_pid
trap - EXIT
echo "demo: done; server exited cleanly"
