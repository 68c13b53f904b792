#!/usr/bin/env python3
"""A Strata client in Python, using stubs generated from proto/strata.proto.

The build generates the stubs into build/python (strata_pb2.py, strata_pb2_grpc.py); point
--stubs there. Needs grpcio and protobuf (Debian: python3-grpcio python3-protobuf).

    python3 tools/python/example.py --server=127.0.0.1:50051 --stubs=build/python

It searches by vector and lexically (BM25 over the payload text); with a server that has a model
(--model_dir), it also embeds texts and makes a hybrid search; with a decoder (--decoder), it asks a
question and prints the streamed answer with its sources (Generate).
"""
import argparse
import collections
import os
import random
import sys


def channel(grpc, server, tls_ca_file):
    """A channel to the server: TLS with --tls_ca_file, and the API key from STRATA_API_KEY sent
    as 'authorization: Bearer <key>' with every call (by an interceptor, so it works on loopback
    without TLS too, where gRPC's own call credentials are not sent)."""
    if tls_ca_file:
        with open(tls_ca_file, "rb") as f:
            ch = grpc.secure_channel(server, grpc.ssl_channel_credentials(root_certificates=f.read()))
    else:
        ch = grpc.insecure_channel(server)
    key = os.environ.get("STRATA_API_KEY", "").strip()
    if not key:
        return ch

    class Details(collections.namedtuple("Details", "method timeout metadata credentials "
                                                    "wait_for_ready compression"),
                  grpc.ClientCallDetails):
        pass

    class AddKey(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
        def _with_key(self, d):
            md = list(d.metadata or []) + [("authorization", "Bearer " + key)]
            return Details(d.method, d.timeout, md, d.credentials,
                           getattr(d, "wait_for_ready", None), getattr(d, "compression", None))

        def intercept_unary_unary(self, continuation, details, request):
            return continuation(self._with_key(details), request)

        def intercept_unary_stream(self, continuation, details, request):
            return continuation(self._with_key(details), request)

    return grpc.intercept_channel(ch, AddKey())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--server", default="127.0.0.1:50051")
    ap.add_argument("--stubs", default="build/python", help="directory of strata_pb2*.py")
    ap.add_argument("--collection", default="python_example")
    ap.add_argument("--tls_ca_file", default="",
                    help="talk TLS, trusting this PEM certificate (the API key: STRATA_API_KEY)")
    args = ap.parse_args()
    sys.path.insert(0, args.stubs)
    import grpc
    import strata_pb2 as pb
    import strata_pb2_grpc as rpc

    stub = rpc.StrataStub(channel(grpc, args.server, args.tls_ca_file))
    try:
        stub.DropCollection(pb.DropCollectionRequest(name=args.collection))
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            raise
    info = stub.CreateCollection(pb.CreateCollectionRequest(
        name=args.collection, dimension=8, element_type=pb.FLOAT32, metric=pb.COSINE))
    print(f"created {info.name}: dim {info.dimension}")

    rng = random.Random(1)
    points = [pb.Point(id=i, vector=pb.Vector(values=[rng.gauss(0, 1) for _ in range(8)]),
                       payload=pb.Payload(text=f"passage {i}", json=f'{{"n": {i}}}'))
              for i in range(500)]
    resp = stub.Upsert(pb.UpsertRequest(collection=args.collection, points=points))
    assert resp.upserted == 500 and not resp.errors, resp
    print(f"upserted {resp.upserted}")

    query = points[123].vector
    res = stub.Search(pb.SearchRequest(collection=args.collection, query=query, k=3,
                                       with_payload=True))
    for h in res.hits:
        print(f"nearest to point 123: id {h.id} distance {h.distance:.4f} text {h.payload.text!r}")
    assert res.hits[0].id == 123, res

    # Lexical search (BM25 over the payload text) needs no model.
    res = stub.Search(pb.SearchRequest(collection=args.collection, text="passage 42", k=1,
                                       mode=pb.LEXICAL))
    print(f"lexical 'passage 42': id {res.hits[0].id} BM25 {res.hits[0].scores.lexical_score:.3f}")
    assert res.mode == pb.LEXICAL and res.hits[0].id == 42, res

    # Errors are gRPC status codes with a message naming the problem.
    try:
        stub.Search(pb.SearchRequest(collection=args.collection,
                                     query=pb.Vector(values=[1.0, 2.0]), k=3))
        raise SystemExit("a query of the wrong dimension was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        print(f"wrong dimension -> {e.code().name}: {e.details()}")

    got = stub.Get(pb.GetRequest(collection=args.collection, ids=[5, 10_000], with_payload=True))
    assert [p.id for p in got.points] == [5] and list(got.missing_ids) == [10_000], got
    print(f"count: {stub.Count(pb.CountRequest(collection=args.collection)).count}")
    tenant_example(stub, pb, grpc, args)
    stub.DropCollection(pb.DropCollectionRequest(name=args.collection))
    text_example(stub, pb, grpc, args.collection + "_text")
    return 0


def tenant_example(stub, pb, grpc, args):
    """Tenants: each sees its own points; a tenant key is confined to its tenant (README,
    "Tenants")."""
    name = args.collection
    for t in ("acme", "globex"):
        stub.CreateTenant(pb.CreateTenantRequest(collection=name, name=t))
    # Point 7 is seen by acme alone, point 8 by both (stored once); the rest by neither.
    stub.Upsert(pb.UpsertRequest(collection=name, points=[
        pb.Point(id=7, vector=pb.Vector(values=[1.0] * 8), tenants=pb.TenantList(names=["acme"])),
        pb.Point(id=8, vector=pb.Vector(values=[1.0] * 7 + [2.0]),
                 tenants=pb.TenantList(names=["acme", "globex"]))]))
    for t in ("acme", "globex"):
        res = stub.Search(pb.SearchRequest(collection=name, query=pb.Vector(values=[1.0] * 8),
                                           k=10, tenant=t))
        print(f"tenant {t} sees {sorted(h.id for h in res.hits)}")
    if not os.environ.get("STRATA_API_KEY"):
        print("tenant keys: skipped (they need a server with an admin key, sent as STRATA_API_KEY)")
        return
    key = stub.CreateApiKey(pb.CreateApiKeyRequest(collection=name, tenants=["globex"],
                                                   label="python example")).key
    as_globex = rpc_as(grpc, args, key)
    res = as_globex.Search(pb.SearchRequest(collection=name, query=pb.Vector(values=[1.0] * 8),
                                            k=10))
    assert [h.id for h in res.hits] == [8], res
    try:
        as_globex.Count(pb.CountRequest(collection=name, tenant="acme"))
        raise SystemExit("a tenant key acted for another tenant")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e
        print(f"globex's key on acme -> {e.code().name}: {e.details()}")


def rpc_as(grpc, args, key):
    """A stub that sends `key` instead of STRATA_API_KEY."""
    import strata_pb2_grpc as rpc
    saved = os.environ["STRATA_API_KEY"]
    os.environ["STRATA_API_KEY"] = key
    try:
        return rpc.StrataStub(channel(grpc, args.server, args.tls_ca_file))
    finally:
        os.environ["STRATA_API_KEY"] = saved


def text_example(stub, pb, grpc, name):
    """Texts in, texts out: the server embeds (strata-server --model_dir=...)."""
    passages = ["PostgreSQL reclaims the space of dead rows with VACUUM.",
                "A B-tree index speeds up equality and range queries.",
                "Write-ahead logging makes committed transactions durable."]
    try:
        emb = stub.Embed(pb.EmbedRequest(texts=passages))
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.FAILED_PRECONDITION:
            raise
        print(f"text: skipped ({e.details()})")
        return
    print(f"text: {emb.model} embeds to {emb.dimension}-d ({emb.tokens} tokens)")
    try:
        stub.DropCollection(pb.DropCollectionRequest(name=name))
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            raise
    stub.CreateCollection(pb.CreateCollectionRequest(
        name=name, dimension=emb.dimension, element_type=pb.FLOAT32, metric=pb.COSINE))
    stub.Upsert(pb.UpsertRequest(collection=name, points=[
        pb.Point(id=i, vector=v, payload=pb.Payload(text=t))
        for i, (v, t) in enumerate(zip(emb.vectors, passages))]))
    # A text query over a collection with text is HYBRID by default: dense and BM25, fused; each
    # hit carries both scores. mode=pb.DENSE or pb.LEXICAL asks for one side.
    res = stub.Search(pb.SearchRequest(collection=name, text="how does VACUUM free disk space?",
                                       k=2, with_payload=True))
    print(f"text: {pb.SearchMode.Name(res.mode)} by {pb.Fusion.Name(res.fusion)}, "
          f"dense weight {res.dense_weight:.2f} ({res.stats.embed_micros} us embedding)")
    for h in res.hits:
        print(f"  {h.payload.text!r}: score {h.scores.score:.3f}, dense distance "
              f"{h.scores.dense_distance:.3f}, BM25 {h.scores.lexical_score:.3f}")
    assert res.hits[0].id == 0, res
    rag_example(stub, pb, grpc, name)
    stub.DropCollection(pb.DropCollectionRequest(name=name))


def rag_example(stub, pb, grpc, name):
    """A question answered from the collection's passages, streamed (strata-server --decoder)."""
    req = pb.GenerateRequest(collection=name, question="How does PostgreSQL free dead rows?", k=2,
                             params=pb.GenerationParams(max_tokens=48, repetition_penalty=1.1))
    answer = []
    try:
        for msg in stub.Generate(req):
            if msg.HasField("summary"):
                s = msg.summary
                print(f"\nrag: {s.usage.generated_tokens} tokens ({s.finish_reason}), TTFT "
                      f"{s.timings.ttft_ms:.0f} ms, {s.usage.cached_tokens} of "
                      f"{s.usage.prompt_tokens} prompt tokens from the KV cache")
                for c in s.citations:
                    print(f"  [{c.number}] id {c.id}: {c.payload.text!r}")
            else:
                answer.append(msg.text)
                print(msg.text, end="", flush=True)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.FAILED_PRECONDITION:
            raise
        print(f"rag: skipped ({e.details()})")
        return
    assert answer, "no answer text"


if __name__ == "__main__":
    sys.exit(main())
