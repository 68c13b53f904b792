#!/usr/bin/env bash
# Strata under the sanitizers: builds with clang, AddressSanitizer and UBSan (build-asan/), runs
# the storage and index test binaries there, then each libFuzzer target of tests/fuzz for a
# bounded number of inputs, starting from its committed seed corpus (tests/fuzz/corpus/NAME).
# Any memory error, undefined behaviour, crash or leak fails the script.
#
#   tools/sanitize.sh [--runs=N]     (default 20000 inputs per fuzz target; tools/test.sh runs it)
#   tools/sanitize.sh --fuzz_only --seconds=S [--corpus=DIR]
#       the nightly run (.ci/nightly): each target for S seconds, its corpus kept in DIR/NAME
#       between runs (grown from the committed seeds), a table of inputs and coverage at the end
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR=true

runs=20000
seconds=0
fuzz_only=0
corpus_root=""
for arg in "$@"; do
  case "$arg" in
    --runs=*) runs="${arg#--runs=}" ;;
    --seconds=*) seconds="${arg#--seconds=}" ;;
    --fuzz_only) fuzz_only=1 ;;
    --corpus=*) corpus_root="${arg#--corpus=}" ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "sanitize.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done
if [ "$seconds" -gt 0 ]; then limit=(-max_total_time="$seconds"); else limit=(-runs="$runs"); fi

tests=(cpu_features_test crc32c_test env_test block_reader_test posting_file_test vector_file_test metadata_store_test
       distance_test vector_rules_test spann_index_test brute_force_test collection_test
       collection_stall_test catalog_test
       safetensors_test wordpiece_test gemm_test backend_test bm25_test fusion_test
       collection_text_test gguf_test bpe_tokenizer_test decoder_test passage_kv_test
       passage_kv_cache_test generator_test thread_pool_test quant_dot_q8_test tenant_test
       power_loss_test appended_vectors_test mapped_arena_test posting_maintenance_test
       record_purger_test growing_graph_test shared_chunks_test
       uring_file_system_test read_fanout_test cell_extent_test id_set_test)
fuzzers=(fuzz_index_open fuzz_ids_file fuzz_vector_file fuzz_wal_scan fuzz_safetensors fuzz_wordpiece
         fuzz_requests fuzz_text_analyzer fuzz_gguf fuzz_bpe)

# Warnings are the gcc build's job (-Werror there); clang under ASan cannot vectorise some
# "omp simd" loops and says so.
CC=clang CXX=clang++ cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTRATA_SANITIZE=ON -DSTRATA_FUZZ=ON -DSTRATA_BUILD_TESTS=ON -DSTRATA_BUILD_BENCH=OFF \
  -DSTRATA_ENABLE_CUDA=OFF -DSTRATA_WERROR=OFF >/dev/null
if [ "$fuzz_only" = 1 ]; then tests=(); fi
cmake --build build-asan -j"$(nproc)" --target "${tests[@]}" "${fuzzers[@]}"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in ${tests[@]+"${tests[@]}"}; do
  echo "sanitize: $t"
  (cd build-asan && "bin/$t" --gtest_brief=1) || { echo "sanitize: $t FAILED under ASan/UBSan"; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
table=""
for f in "${fuzzers[@]}"; do
  corpus="${corpus_root:-$work}/$f"
  mkdir -p "$corpus"
  if [ -d "tests/fuzz/corpus/$f" ]; then cp -r "tests/fuzz/corpus/$f/." "$corpus/"; fi
  log="$work/$f.log"
  if ! "build-asan/bin/$f" "${limit[@]}" -max_len=65536 -rss_limit_mb=2048 -timeout=20 \
      -print_final_stats=1 -artifact_prefix="$work/" "$corpus" >"$log" 2>&1; then
    tail -n 60 "$log"
    mkdir -p build-asan/findings && cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* \
      "$work"/oom-* build-asan/findings/ 2>/dev/null || true
    echo "sanitize: fuzz target $f FAILED (its input is in build-asan/findings/ and above)"
    exit 1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || echo '?')
  echo "sanitize: fuzz $f: $execs inputs, coverage $cov edges, no finding"
  if [ -n "$corpus_root" ]; then
    # A kept corpus is minimised (the inputs that keep its coverage), so it does not grow for ever.
    rm -rf "$corpus.min" && mkdir -p "$corpus.min"
    if "build-asan/bin/$f" -merge=1 -max_len=65536 -rss_limit_mb=2048 -timeout=20 \
        "$corpus.min" "$corpus" >"$work/$f.merge.log" 2>&1; then
      rm -rf "$corpus" && mv "$corpus.min" "$corpus"
    else
      rm -rf "$corpus.min"
      echo "sanitize: $f: minimising the corpus failed (kept whole); see below"
      tail -n 20 "$work/$f.merge.log"
    fi
  fi
  table+="| $f | $execs | $cov | $(find "$corpus" -type f | wc -l) |"$'\n'
done
if [ "$seconds" -gt 0 ]; then
  echo "| target | inputs in ${seconds} s | coverage (edges) | corpus files |"
  echo "|---|---|---|---|"
  printf '%s' "$table"
fi
# ThreadSanitizer cannot share this build (the two sanitizers exclude each other): tools/tsan.sh.
echo "sanitize: all passed"
