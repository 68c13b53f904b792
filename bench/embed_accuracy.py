#!/usr/bin/env python3
"""Worst and mean cosine between Strata's embeddings (strata-embed-bench --dump, one file per
precision) and sentence-transformers' f32 embeddings of the same passages. Needs torch and
sentence-transformers (bench/embed_peer.py's interpreter).

  embed_accuracy.py --model_dir models/all-minilm-l6-v2 --passages p.jsonl f32=a.f32 bf16=b.f32
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model_dir", default="models/all-minilm-l6-v2")
    ap.add_argument("--passages", required=True)
    ap.add_argument("dumps", nargs="+", help="name=file pairs from strata-embed-bench --dump")
    args = ap.parse_args()
    try:
        import numpy as np
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        sys.exit(f"embed_accuracy.py: {e}; install: pip install torch sentence-transformers")
    texts = [json.loads(line)["text"] for line in open(args.passages, encoding="utf-8")]
    model = SentenceTransformer(args.model_dir, device="cpu")
    with torch.inference_mode():
        ref = model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True)
    ref = ref.astype(np.float64)
    print(f"{len(texts)} passages; cosine against sentence-transformers (f32)")
    print(f"{'precision':>10} {'worst':>10} {'mean':>10}")
    for pair in args.dumps:
        name, path = pair.split("=", 1)
        got = np.fromfile(path, dtype=np.float32).reshape(len(texts), -1).astype(np.float64)
        cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
        print(f"{name:>10} {cos.min():>10.7f} {cos.mean():>10.7f}")


if __name__ == "__main__":
    main()
