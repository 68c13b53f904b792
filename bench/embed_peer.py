#!/usr/bin/env python3
"""The PyTorch reference for strata-embed-bench: sentence-transformers on the same passages and
batch sizes, written as the same JSON lines. Needs `pip install torch sentence-transformers`.

  embed_peer.py --model_dir models/all-minilm-l6-v2 --passages p.jsonl --batch_sizes 1,16,256
"""
import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model_dir", default="models/all-minilm-l6-v2")
    ap.add_argument("--passages", required=True)
    ap.add_argument("--batch_sizes", default="1,4,16,64,256")
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default="f32", help="f32 or f16 (cuda)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        sys.exit(f"embed_peer.py: {e}; install the reference with: pip install torch sentence-transformers")
    torch.set_num_threads(os.cpu_count())
    texts = []
    with open(args.passages, encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            if len(texts) >= args.texts:
                break
    model = SentenceTransformer(args.model_dir, device=args.device)
    if args.dtype == "f16":
        model = model.half()
    tok = model.tokenizer
    tokens = sum(min(len(tok(t)["input_ids"]), model.max_seq_length) for t in texts)
    model.encode(texts[:16], batch_size=16)  # warm-up
    out = open(args.json, "w") if args.json else None
    print(f"PyTorch {torch.__version__} sentence-transformers on {args.device} ({args.dtype}), "
          f"{torch.get_num_threads()} threads, {len(texts)} passages")
    print(f"{'batch':>6} {'sentences/s':>12} {'tokens/s':>12}")
    for b in [int(x) for x in args.batch_sizes.split(",")]:
        if args.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(0, len(texts), b):
            model.encode(texts[i:i + b], batch_size=b, convert_to_numpy=True)
        if args.device == "cuda":
            torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        print(f"{b:>6} {len(texts) / secs:>12.1f} {tokens / secs:>12.0f}", flush=True)
        if out:
            out.write(json.dumps({"engine": "pytorch", "backend": args.device, "batch": b,
                                  "texts": len(texts), "tokens": tokens, "seconds": secs}) + "\n")
    if out:
        out.close()


if __name__ == "__main__":
    main()
