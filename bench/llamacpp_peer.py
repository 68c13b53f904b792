#!/usr/bin/env python3
"""llama.cpp's prefill and decode speed on a GGUF (the xllamacpp wheel, CPU), for
bench/generation.sh: a prompt of --context tokens (fixed ids, as strata-decode-bench), then
--tokens generated greedily ignoring end of sequence; 2 threads; best of 3 runs."""
import argparse
import json


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--context", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import xllamacpp as xlc
    p = xlc.CommonParams()
    p.model.path = args.model
    p.n_ctx = args.context + args.tokens + 64
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    p.sampling.temp = 0
    srv = xlc.Server(p)
    prompt = [100 + (i * 37) % 20000 for i in range(args.context)]
    best = None
    for _ in range(3):
        r = srv.handle_completions({"prompt": prompt, "n_predict": args.tokens, "temperature": 0,
                                    "ignore_eos": True, "cache_prompt": False})
        t = r["timings"]
        if best is None or t["predicted_per_second"] > best["predicted_per_second"]:
            best = t
    print(f"llama.cpp context {args.context:5d}: prefill {best['prompt_per_second']:7.1f} tok/s | "
          f"decode {best['predicted_per_second']:6.1f} tok/s "
          f"({1000 / best['predicted_per_second']:.2f} ms/token)")
    print(json.dumps({k: best[k] for k in ("prompt_n", "prompt_per_second", "predicted_n",
                                            "predicted_per_second")}))


if __name__ == "__main__":
    main()
