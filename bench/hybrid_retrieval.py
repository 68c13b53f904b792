#!/usr/bin/env python3
"""Hybrid retrieval through a running strata-server: recall of the gold passage and query latency
for each search mode (dense, lexical, hybrid by relative score and by reciprocal rank).

Recall@1/5/10 and MRR@10 over every question (SearchBatch by text, 256 at a time). Latency: the
first --latency_queries questions asked one Search at a time by 1 and by 2 client threads; the
server's own time less the query's embedding (SearchStats.server_micros - embed_micros), so
the modes compare on what differs between them; p50 and p99.

  bench/hybrid_retrieval.sh  (starts a server, loads the passages with strata-load, runs this)

Needs the generated stubs (build/python) and grpcio.
"""
import argparse
import json
import sys
import threading


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--stubs", default="build/python")
    ap.add_argument("--collection", default="passages")
    ap.add_argument("--passages", required=True, help="the loaded JSONL: id = row, source_id")
    ap.add_argument("--questions", required=True,
                    help="JSONL: question and context_id (or context_ids)")
    ap.add_argument("--latency_queries", type=int, default=1000)
    args = ap.parse_args()
    sys.path.insert(0, args.stubs)
    import grpc
    import strata_pb2 as pb
    import strata_pb2_grpc as rpc

    row_of = {}
    for line in open(args.passages, encoding="utf-8"):
        p = json.loads(line)
        row_of[str(p["source_id"])] = p["id"]
    texts, gold = [], []
    for line in open(args.questions, encoding="utf-8"):
        q = json.loads(line)
        ids = q["context_ids"] if "context_ids" in q else [q["context_id"]]
        rows = {row_of[str(i)] for i in ids if str(i) in row_of}
        if rows:
            texts.append(q["question"])
            gold.append(rows)
    channel = grpc.insecure_channel(args.server,
                                    options=[("grpc.max_receive_message_length", 1 << 28)])
    stub = rpc.StrataStub(channel)
    runs = [("dense", dict(mode=pb.DENSE)),
            ("lexical (BM25)", dict(mode=pb.LEXICAL)),
            ("hybrid, relative score (default)", dict(mode=pb.HYBRID)),
            ("hybrid, reciprocal rank", dict(mode=pb.HYBRID, fusion=pb.RECIPROCAL_RANK))]

    info = stub.DescribeCollection(pb.DescribeCollectionRequest(name=args.collection))
    how = (f"learned on {info.hybrid.questions} other questions" if info.hybrid.learned
           else "the server's default")
    print(f"{len(texts)} questions over {len(row_of)} passages; gold passage in the top k; "
          f"hybrid dense weight {info.hybrid.dense_weight:.1f} ({how})")
    print(f"{'':36} {'R@1':>7} {'R@5':>7} {'R@10':>7} {'MRR@10':>7}")
    for name, extra in runs:
        ranked = []
        for i in range(0, len(texts), 256):
            r = stub.SearchBatch(pb.SearchBatchRequest(collection=args.collection,
                                                       texts=texts[i:i + 256], k=10, **extra),
                                 timeout=600)
            ranked += [[h.id for h in res.hits] for res in r.results]
        at = {1: 0, 5: 0, 10: 0}
        mrr = 0.0
        for hits, g in zip(ranked, gold):
            for rank, h in enumerate(hits[:10]):
                if h in g:
                    for k in at:
                        at[k] += rank < k
                    mrr += 1.0 / (rank + 1)
                    break
        n = len(texts)
        print(f"{name:36} {at[1] / n:7.4f} {at[5] / n:7.4f} {at[10] / n:7.4f} {mrr / n:7.4f}")

    def latencies(extra, clients):
        # Each client on its own connection; the questions spread round-robin.
        lat = []
        lock = threading.Lock()
        count = min(args.latency_queries, len(texts))

        def work(c):
            ch = grpc.insecure_channel(args.server, options=[("strata.client", c)])
            s = rpc.StrataStub(ch)
            mine = []
            for i in range(c, count, clients):
                r = s.Search(pb.SearchRequest(collection=args.collection, text=texts[i], k=10,
                                              **extra), timeout=60)
                mine.append(r.stats.server_micros - r.stats.embed_micros)
            with lock:
                lat.extend(mine)
        threads = [threading.Thread(target=work, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        lat.sort()
        return lat[len(lat) // 2], lat[min(len(lat) - 1, len(lat) * 99 // 100)]

    print(f"\nserver time less embedding, us, over {min(args.latency_queries, len(texts))} "
          f"Search calls (p50 / p99)")
    print(f"{'':36} {'1 client':>15} {'2 clients':>15}")
    for name, extra in runs:
        cells = []
        for clients in (1, 2):
            p50, p99 = latencies(extra, clients)
            cells.append(f"{p50:6d} / {p99:6d}")
        print(f"{name:36} {cells[0]:>15} {cells[1]:>15}")


if __name__ == "__main__":
    main()
