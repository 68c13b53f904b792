#!/usr/bin/env python3
"""Retrieval quality of Strata's text path on SQuAD v1.1 dev: for each question, is its gold
passage among the top k? Through a running strata-server (Embed and search by text), beside exact
search over the same vectors (what the index loses) and, when PyTorch is installed, the same
model run by sentence-transformers (what our encoder loses).

  bench/squad_retrieval.sh  (starts a server, loads the passages with strata-load, runs this)

Needs the generated stubs (build/python), grpcio and numpy.
"""
import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--stubs", default="build/python")
    ap.add_argument("--collection", default="squad")
    ap.add_argument("--passages", required=True, help="the loaded JSONL (ids = rows)")
    ap.add_argument("--questions", required=True, help="squad-v1.1-dev-questions.jsonl")
    ap.add_argument("--limit", type=int, default=0, help="questions to ask (0 = all)")
    ap.add_argument("--reference_python", default="", help="an interpreter with sentence-transformers")
    ap.add_argument("--model_dir", default="models/all-minilm-l6-v2")
    args = ap.parse_args()
    sys.path.insert(0, args.stubs)
    import grpc
    import numpy as np
    import strata_pb2 as pb
    import strata_pb2_grpc as rpc

    passages = [json.loads(l) for l in open(args.passages, encoding="utf-8")]
    row_of = {p["squad_id"]: p["id"] for p in passages}
    questions = [json.loads(l) for l in open(args.questions, encoding="utf-8")]
    if args.limit:
        questions = questions[:args.limit]
    gold = np.array([row_of[q["context_id"]] for q in questions])
    texts = [q["question"] for q in questions]
    stub = rpc.StrataStub(grpc.insecure_channel(args.server,
                                                options=[("grpc.max_receive_message_length", 1 << 28)]))
    ks = (1, 5, 10)

    # 1. The service: batch searches by text (the server embeds, then searches its index).
    t0 = time.perf_counter()
    hits = []
    for i in range(0, len(texts), 256):
        r = stub.SearchBatch(pb.SearchBatchRequest(collection=args.collection, texts=texts[i:i + 256],
                                                   k=max(ks)), timeout=600)
        hits += [[h.id for h in res.hits] for res in r.results]
    served = time.perf_counter() - t0

    # 2. Exact search over the same embeddings (Embed RPC for passages and questions).
    def embed(items):
        out = []
        for i in range(0, len(items), 256):
            r = stub.Embed(pb.EmbedRequest(texts=items[i:i + 256]), timeout=600)
            out += [list(v.values) for v in r.vectors]
        return np.array(out, dtype=np.float32)
    pv = embed([p["text"] for p in passages])
    qv = embed(texts)
    exact = np.argsort(-(qv @ pv.T), axis=1)[:, :max(ks)]

    def recall(ranked):
        return {k: float(np.mean([gold[i] in list(ranked[i][:k]) for i in range(len(gold))])) for k in ks}

    rows = [("strata-server (index, text queries)", recall(hits)),
            ("exact search, Strata's embeddings", recall(exact))]
    if args.reference_python:
        import subprocess, tempfile, os
        with tempfile.TemporaryDirectory() as d:
            json.dump({"passages": [p["text"] for p in passages], "questions": texts},
                      open(os.path.join(d, "in.json"), "w"))
            code = ("import json,sys,numpy as np\n"
                    "from sentence_transformers import SentenceTransformer\n"
                    f"m=SentenceTransformer({args.model_dir!r}, device='cpu')\n"
                    f"d=json.load(open({os.path.join(d, 'in.json')!r}))\n"
                    "p=m.encode(d['passages'],batch_size=64,normalize_embeddings=True)\n"
                    "q=m.encode(d['questions'],batch_size=256,normalize_embeddings=True)\n"
                    f"np.save({os.path.join(d, 'p.npy')!r},p); np.save({os.path.join(d, 'q.npy')!r},q)\n")
            subprocess.run([args.reference_python, "-c", code], check=True,
                           stderr=subprocess.DEVNULL)
            rp, rq = np.load(os.path.join(d, "p.npy")), np.load(os.path.join(d, "q.npy"))
        ref = np.argsort(-(rq @ rp.T), axis=1)[:, :max(ks)]
        rows.append(("exact search, sentence-transformers' embeddings", recall(ref)))
    print(f"SQuAD v1.1 dev: {len(passages)} passages, {len(questions)} questions; "
          f"gold passage in the top k")
    print(f"{'':50} " + " ".join(f"{'R@' + str(k):>7}" for k in ks))
    for name, r in rows:
        print(f"{name:50} " + " ".join(f"{r[k]:7.4f}" for k in ks))
    print(f"{len(texts)} text searches through the server in {served:.1f} s "
          f"({len(texts) / served:.0f} questions/s, embedding included)")


if __name__ == "__main__":
    main()
