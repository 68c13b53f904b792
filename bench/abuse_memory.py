#!/usr/bin/env python3
"""Concurrent large calls against a running strata-server, then its peak and current RSS.

12 clients (--clients), each making three calls: a SearchBatch of 480 queries of 32,768 floats
(a 64 MB request), a Get of 480 such vectors (a 64 MB response) and an Upsert of 480 such points
(a 64 MB request). Prints the outcome counts, the server's VmHWM/VmRSS and its call-memory budget
figures. Needs the Python stubs the build writes to build/python and grpcio.

  build/bin/strata-server --data_dir=/tmp/abuse --listen=127.0.0.1:50996 --metrics_listen= &
  bench/abuse_memory.py --port=50996 --pid=$!
"""
import argparse
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'build', 'python'))
import grpc  # noqa: E402
import strata_pb2 as pb  # noqa: E402
import strata_pb2_grpc as rpc  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--pid', type=int, required=True, help="the server's process id")
    ap.add_argument('--clients', type=int, default=12)
    a = ap.parse_args()
    opts = [('grpc.max_receive_message_length', 2**31 - 1),
            ('grpc.max_send_message_length', 2**31 - 1)]
    addr = '127.0.0.1:%d' % a.port
    stub = rpc.StrataStub(grpc.insecure_channel(addr, options=opts))
    d = 32768
    stub.CreateCollection(pb.CreateCollectionRequest(name='abuse', dimension=d,
                                                     element_type=pb.FLOAT32, metric=pb.L2))
    stub.Upsert(pb.UpsertRequest(collection='abuse', points=[
        pb.Point(id=i, vector=pb.Vector(values=[float(i)] * d)) for i in range(4)]))
    q = pb.Vector(values=[1.0] * d)
    calls = [('SearchBatch', pb.SearchBatchRequest(collection='abuse', queries=[q] * 480, k=1)),
             ('Get', pb.GetRequest(collection='abuse', ids=[i % 4 for i in range(480)],
                                   with_vector=True)),
             ('Upsert', pb.UpsertRequest(collection='abuse', points=[
                 pb.Point(id=100 + i, vector=q) for i in range(480)]))]
    outcomes, lock = {}, threading.Lock()

    def client(i):
        s = rpc.StrataStub(grpc.insecure_channel(addr, options=opts))
        for j in range(3):
            name, req = calls[(i + j) % 3]
            try:
                getattr(s, name)(req, timeout=120)
                o = name + ' OK'
            except grpc.RpcError as e:
                o = '%s %s' % (name, e.code())
            with lock:
                outcomes[o] = outcomes.get(o, 0) + 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, v in sorted(outcomes.items()):
        print(v, k)
    with open('/proc/%d/status' % a.pid) as f:
        for line in f:
            if line.startswith(('VmHWM', 'VmRSS')):
                print(line.strip())
    m = stub.Stats(pb.StatsRequest()).call_memory
    print('budget %d, peak %d, refusals %d' % (m.budget_bytes, m.peak_bytes, m.refusals))


if __name__ == '__main__':
    main()
