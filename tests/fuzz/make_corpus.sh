#!/usr/bin/env bash
# Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/NAME/) from real files that
# Strata's own binaries produce, so the fuzzers start from valid inputs. Run from the repository
# root after a build (build/bin). The seeds are committed; rerun when a format changes.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/bin
out=tests/fuzz/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out"
mkdir -p "$out"/{fuzz_index_open,fuzz_vector_file,fuzz_wal_scan,fuzz_safetensors,fuzz_wordpiece,fuzz_text_analyzer}
mkdir -p "$out"/fuzz_requests "$out"/fuzz_ids_file

python3 - "$tmp" "$out" <<'PY'
import json, os, struct, sys
tmp, out = sys.argv[1], sys.argv[2]
import random
random.seed(7)
n, d = 300, 8
rows = [[random.gauss(0, 1) for _ in range(d)] for _ in range(n)]
def fbin(path, rows):
    with open(path, 'wb') as f:
        f.write(struct.pack('<II', len(rows), len(rows[0])))
        for r in rows: f.write(struct.pack('<%df' % len(r), *r))
fbin(os.path.join(tmp, 'base.fbin'), rows)
fbin(os.path.join(tmp, 'query.fbin'), rows[:5])
with open(os.path.join(tmp, 'gt.bin'), 'wb') as f:  # a ground truth of the right shape
    f.write(struct.pack('<II', 5, 1))
    f.write(struct.pack('<5i', *range(5)))
    f.write(struct.pack('<5f', *([0.0] * 5)))
# fuzz_vector_file: first byte picks the reader (.fbin .u8bin .i8bin .ibin .fvecs .bvecs .ivecs
# .npy .bin), the rest is the file.
small = rows[:4]
def seed(name, kind, body):
    with open(os.path.join(out, 'fuzz_vector_file', name), 'wb') as f:
        f.write(bytes([kind]) + body)
seed('fbin', 0, struct.pack('<II', 4, d) + b''.join(struct.pack('<%df' % d, *r) for r in small))
seed('u8bin', 1, struct.pack('<II', 3, 4) + bytes(range(12)))
seed('ibin', 3, struct.pack('<II', 3, 1) + struct.pack('<3i', 5, 6, 7))
seed('fvecs', 4, b''.join(struct.pack('<i', d) + struct.pack('<%df' % d, *r) for r in small))
seed('ivecs', 6, b''.join(struct.pack('<i', 2) + struct.pack('<2i', i, i + 1) for i in range(3)))
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
hdr = hdr + ' ' * (63 - (10 + len(hdr)) % 64) + '\n'
seed('npy', 7, b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)) + hdr.encode() +
     struct.pack('<6f', *range(6)))
seed('gt', 8, open(os.path.join(tmp, 'gt.bin'), 'rb').read())
# fuzz_safetensors: two tensors.
header = {"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
          "w": {"dtype": "F16", "shape": [3], "data_offsets": [16, 22]},
          "__metadata__": {"format": "pt"}}
h = json.dumps(header).encode()
with open(os.path.join(out, 'fuzz_safetensors', 'two'), 'wb') as f:
    f.write(struct.pack('<Q', len(h)) + h + struct.pack('<4f', 1, 2, 3, 4) + b'\x00\x3c' * 3)
# fuzz_wordpiece and fuzz_text_analyzer: texts.
for i, text in enumerate(["The runner's unable to run.", "Élan, 中文 and x-rays!",
                          "\u00e9\u0301 combining", "tabs\tand\nnewlines  ", "unable" * 40]):
    for target in ('fuzz_wordpiece', 'fuzz_text_analyzer'):
        with open(os.path.join(out, target, 't%d' % i), 'wb') as f:
            f.write(text.encode())
PY

# fuzz_index_open: a real small index, framed as [u32 length][bytes] per file.
"$bin/strata-bench" --base="$tmp/base.fbin" --queries="$tmp/query.fbin" --gt="$tmp/gt.bin" \
  --index="$tmp/index" --k=1 --postings=none --peers=none --iops_seconds=0 >/dev/null
python3 - "$tmp/index" "$out/fuzz_index_open/small" <<'PY'
import struct, sys
d, dest = sys.argv[1], sys.argv[2]
with open(dest, 'wb') as f:
    for name in ['MANIFEST', 'heads.graph', 'postings.tbl', 'postings.dat']:
        data = open(d + '/' + name, 'rb').read()
        f.write(struct.pack('<I', len(data)) + data)
PY

# fuzz_ids_file: the ids.bin of a collection loaded offline (its index built at once).
"$bin/strata-load" --mode=offline --data_dir="$tmp/offline" --input="$tmp/base.fbin" \
  --collection=x >/dev/null 2>&1
cp "$(find "$tmp/offline" -name ids.bin | head -n 1)" "$out/fuzz_ids_file/ids.bin"
# fuzz_wal_scan: the write-ahead log of a server that took a few writes.
"$bin/strata-server" --data_dir="$tmp/data" --listen=127.0.0.1:0 --metrics_listen= \
  --ready_file="$tmp/ready" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/ready" ] && break; sleep 0.1; done
addr="127.0.0.1:$(cat "$tmp/ready")"
"$bin/strata-cli" --server="$addr" create w --dim=8 >/dev/null
for i in 1 2 3; do
  "$bin/strata-cli" --server="$addr" delete w "$i" >/dev/null
done
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
for log in "$tmp"/data/meta/*.log; do cp "$log" "$out/fuzz_wal_scan/$(basename "$log")"; done
# fuzz_requests: one valid request per method (first byte: the method's place in
# fuzz_requests.cc's kMethods), serialised with the stubs the build generates.
/usr/bin/python3 - "$out/fuzz_requests" build/python <<'PY'
import os, sys
sys.path.insert(0, sys.argv[2])
import strata_pb2 as pb
out = sys.argv[1]
v = lambda *xs: pb.Vector(values=list(xs))
reqs = [
    (0, pb.CreateCollectionRequest(name='c', dimension=4, element_type=pb.FLOAT32, metric=pb.L2,
                                   index=pb.IndexParams(build_threshold=20))),
    (0, pb.CreateCollectionRequest(name='cos', dimension=4, element_type=pb.FLOAT32,
                                   metric=pb.COSINE)),
    (1, pb.DropCollectionRequest(name='c')),
    (2, pb.ListCollectionsRequest()),
    (3, pb.DescribeCollectionRequest(name='c')),
    (4, pb.BuildIndexRequest(collection='c')),
    (5, pb.UpsertRequest(collection='c', points=[
        pb.Point(id=i, vector=v(i, 1, 2, 3), payload=pb.Payload(json='{"k": %d}' % i, text='t'))
        for i in range(30)])),
    (6, pb.DeleteRequest(collection='c', ids=[1, 2, 3])),
    (7, pb.GetRequest(collection='c', ids=[0, 5, 99], with_vector=True, with_payload=True)),
    (8, pb.CountRequest(collection='c')),
    (9, pb.SearchRequest(collection='c', query=v(1, 1, 2, 3), k=5, with_payload=True,
                         params=pb.SearchParams(max_postings=4))),
    (10, pb.SearchBatchRequest(collection='c', queries=[v(1, 2, 3, 4), v(0, 0, 0, 1)], k=3,
                               with_vector=True)),
    (11, pb.StatsRequest()),
    (12, pb.EmbedRequest(texts=['hello'])),
    (9, pb.SearchRequest(collection='c', text='t word', k=5, mode=pb.LEXICAL, with_payload=True)),
    (9, pb.SearchRequest(collection='c', text='t', k=3, mode=pb.HYBRID, fusion=pb.RECIPROCAL_RANK,
                         dense_weight=0.3)),
    (10, pb.SearchBatchRequest(collection='c', texts=['t', 'other words'], k=2, mode=pb.LEXICAL)),
    (9, pb.SearchRequest(collection='c', text='"t word" other', k=3, mode=pb.LEXICAL)),
]
for i, (method, req) in enumerate(reqs):
    with open(os.path.join(out, 'r%02d' % i), 'wb') as f:
        f.write(bytes([method]) + req.SerializeToString())
PY
du -sh "$out"/*
# GGUF and BPE seeds (a minimal model file and a few texts).
python3 tests/fuzz/gguf_bpe_seeds.py "$out"
