#!/usr/bin/env bash
# Strata under ThreadSanitizer: builds with clang and -DSTRATA_TSAN=ON (build-tsan/), then runs
# the tests that exercise Strata's threads - the thread pool, the embedding batcher, the
# generator, the passage KV cache and its writer thread, the collection (searches and writes
# beside a build and beside posting maintenance), the store's reads on the read fan-out and the
# io_uring rings of its table files - and the end-to-end tests whose strata-server runs under
# TSan too.
# Any data race (or lock-order inversion) reported by any process fails the script.
#
# What TSan can and cannot see here: Strata's own code is instrumented and its mutexes are
# std:: primitives in this build (base/mutex.h); OpenMP regions are seen through LLVM's Archer
# tool; Debian's libraries (Abseil, gRPC, RocksDB, protobuf) are not instrumented, so races
# inside them are not looked for (ignore_noninstrumented_modules).
#
#   tools/tsan.sh [TEST...]     (default: the list below; tools/test.sh runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR=true

tests=(thread_pool_test embed_batcher_test generator_test passage_kv_cache_test collection_test
       collection_stall_test catalog_test
       collection_text_test hardening_test memory_limits_test e2e_test generate_e2e_test hybrid_e2e_test auth_e2e_test
       tenant_test tenant_e2e_test tenant_rate_limiter_test posting_maintenance_test
       record_purger_test build_queue_test uring_file_system_test read_fanout_test
       metadata_store_test cell_extent_test
       client_channel_test)
for arg in "$@"; do
  case "$arg" in
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "tsan.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] && tests=("$@")

CC=clang CXX=clang++ cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTRATA_TSAN=ON -DSTRATA_BUILD_TESTS=ON -DSTRATA_BUILD_BENCH=OFF \
  -DSTRATA_ENABLE_CUDA=OFF -DSTRATA_WERROR=OFF >/dev/null
cmake --build build-tsan -j"$(nproc)" --target "${tests[@]}" strata-server strata-load strata-cli

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
archer="$(clang -print-resource-dir)/../../libarcher.so"
[ -f "$archer" ] && export OMP_TOOL_LIBRARIES="$archer"
# Every process (the tests and the servers they start) writes its reports to $work/race.PID.
tsan_options="ignore_noninstrumented_modules=1:second_deadlock_stack=1:suppressions=$PWD/tools/tsan.supp"
failed=()
for t in "${tests[@]}"; do
  echo "tsan: $t"
  mkdir -p "$work/$t"
  # Every process of the test (it and the servers it starts) writes its reports to
  # $work/$t/race.PID (a server killed by its test leaves its reports there too).
  (cd build-tsan && TSAN_OPTIONS="log_path=$work/$t/race:$tsan_options" "bin/$t" --gtest_brief=1) ||
    failed+=("$t")
  if compgen -G "$work/$t/race.*" >/dev/null; then
    head -n 400 "$work/$t"/race.* || true
    echo "tsan: $t: ThreadSanitizer reported the above"
    [[ " ${failed[*]} " == *" $t "* ]] || failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "tsan: FAILED: ${failed[*]}"
  exit 1
fi
echo "tsan: all passed"
