#!/usr/bin/env python3
"""Generate under concurrency, through a running strata-server (bench/generation.sh starts one).

For each concurrency level, `--requests` questions (SQuAD) are asked by that many client threads
at once, each with --k passages: per request the time to the first text message (TTFT, client
side) and the generated tokens; per level the tokens per second of all requests together, the mean
batch the server's decoder ran, and the passage KV cache's hit ratio. Each level runs twice: cold
(its questions' passages not cached yet) and warm (the same questions again). FULL_PREFILL at
concurrency 1 is the reference.
"""
import argparse
import json
import statistics
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--server", required=True)
    ap.add_argument("--stubs", default="build/python")
    ap.add_argument("--collection", default="squad")
    ap.add_argument("--questions", required=True)
    ap.add_argument("--levels", default="1,4,16")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--max_tokens", type=int, default=64)
    ap.add_argument("--mode", default="CACHED_INT8")
    args = ap.parse_args()
    sys.path.insert(0, args.stubs)
    import grpc
    import strata_pb2 as pb
    import strata_pb2_grpc as rpc

    qs = [json.loads(l)["question"] for l in open(args.questions, encoding="utf-8")]
    channel = grpc.insecure_channel(args.server)
    stub = rpc.StrataStub(channel)

    def ask(question, mode, out):
        req = pb.GenerateRequest(collection=args.collection, question=question, k=args.k,
                                 cache_mode=getattr(pb, mode),
                                 params=pb.GenerationParams(max_tokens=args.max_tokens,
                                                            repetition_penalty=1.1))
        t0 = time.perf_counter()
        first = None
        summary = None
        for msg in stub.Generate(req, timeout=3600):
            if msg.HasField("summary"):
                summary = msg.summary
            elif first is None:
                first = time.perf_counter() - t0
        out.append({"ttft": first if first is not None else time.perf_counter() - t0,
                    "total": time.perf_counter() - t0,
                    "tokens": summary.usage.generated_tokens,
                    "prompt": summary.usage.prompt_tokens,
                    "hits": summary.cache.ram_hits + summary.cache.disk_hits,
                    "misses": summary.cache.misses,
                    "server_ttft": summary.timings.ttft_ms / 1000})

    def level(concurrency, questions, mode):
        results = []
        lock = threading.Lock()
        todo = list(questions)

        def worker():
            while True:
                with lock:
                    if not todo:
                        return
                    q = todo.pop(0)
                r = []
                ask(q, mode, r)
                with lock:
                    results.extend(r)
        before = stub.Stats(pb.StatsRequest()).generation
        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        tokens = sum(r["tokens"] for r in results)
        hits = sum(r["hits"] for r in results)
        misses = sum(r["misses"] for r in results)
        return {"concurrency": concurrency, "mode": mode, "requests": len(results),
                "ttft_mean": statistics.mean(r["ttft"] for r in results),
                "ttft_p50": statistics.median(r["ttft"] for r in results),
                "tokens_per_s": tokens / wall, "tokens": tokens, "wall": wall,
                "prompt_mean": statistics.mean(r["prompt"] for r in results),
                "hit_ratio": hits / max(1, hits + misses)}

    rows = []
    offset = 0
    for c in [int(x) for x in args.levels.split(",")]:
        batch = qs[offset:offset + args.requests]
        offset += args.requests
        for phase in ("cold", "warm"):
            r = level(c, batch, args.mode)
            r["phase"] = phase
            rows.append(r)
            print(json.dumps(r), flush=True)
    # The reference: full prefill, one at a time, on the first level's questions.
    r = level(1, qs[:args.requests], "FULL_PREFILL")
    r["phase"] = "full"
    rows.append(r)
    print(json.dumps(r), flush=True)
    print()
    print(f"{'concurrency':>11} {'mode':>13} {'phase':>5} {'TTFT mean':>10} {'TTFT p50':>9} "
          f"{'tok/s':>7} {'hit ratio':>9} {'prompt':>7}")
    for r in rows:
        print(f"{r['concurrency']:>11} {r['mode']:>13} {r['phase']:>5} {r['ttft_mean']:>9.2f}s "
              f"{r['ttft_p50']:>8.2f}s {r['tokens_per_s']:>7.1f} {r['hit_ratio']:>9.2f} "
              f"{r['prompt_mean']:>7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
