#!/usr/bin/env python3
"""Writes the reference fixtures the decoder tests compare Strata against (independent code:
the `gguf` package's NumPy dequantisers, Hugging Face `tokenizers`, and a float64 NumPy forward).

  tests/gpu/data/ggml_blocks.json     random blocks of every GGUF type Strata reads, and the
                                      values `gguf.quants.dequantize` gives them
  tests/gpu/data/bpe_cases.json       varied strings: their pre-tokenizer pieces under the gpt2,
                                      smollm, qwen2 and llama-bpe rules, and their ids under
                                      SmolLM2's vocabulary and merges (from the GGUF)
  tests/gpu/data/smollm2_logits.json  chat prompts, their ids, and the top-5 log-probabilities at
                                      every position from a float64 forward of the dequantised
                                      weights of SmolLM2-135M-Instruct.Q4_1.gguf

Run once, by a developer, after tools/fetch-models.sh:
  python3 -m venv /tmp/fx && /tmp/fx/bin/pip install gguf numpy tokenizers
  /tmp/fx/bin/python tools/make-decoder-fixtures.py models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
The fixtures are committed; the tests do not need Python.
"""
import json
import random
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf.quants import dequantize

OUT = Path(__file__).resolve().parent.parent / "tests" / "gpu" / "data"
T = gguf.GGMLQuantizationType


def f16_bytes(values):
    return np.asarray(values, dtype=np.float16).tobytes()


def random_block(rng, qtype):
    """One block of random codes with sane scales (random f16 bits would be NaN/Inf)."""
    n = {T.Q8_0: 34, T.Q4_0: 18, T.Q4_1: 20, T.Q4_K: 144, T.Q6_K: 210}[qtype]
    raw = bytearray(rng.randbytes(n))
    if qtype in (T.Q8_0, T.Q4_0):
        raw[0:2] = f16_bytes([rng.uniform(-0.05, 0.05)])
    elif qtype == T.Q4_1:
        raw[0:4] = f16_bytes([rng.uniform(0.001, 0.05), rng.uniform(-0.5, 0.5)])
    elif qtype == T.Q4_K:
        raw[0:4] = f16_bytes([rng.uniform(0.0001, 0.01), rng.uniform(0.0001, 0.01)])
    elif qtype == T.Q6_K:
        raw[208:210] = f16_bytes([rng.uniform(-0.01, 0.01)])
    return bytes(raw)


def ggml_blocks():
    rng = random.Random(20261203)
    cases = []
    for qtype in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q4_K, T.Q6_K):
        data = b"".join(random_block(rng, qtype) for _ in range(3))
        arr = np.frombuffer(data, dtype=np.uint8).reshape(1, -1)
        values = dequantize(arr, qtype).reshape(-1)
        cases.append({"type": qtype.name, "hex": data.hex(),
                      "values": [float(v) for v in values]})
    for qtype, dt in ((T.F16, np.float16), (T.BF16, None)):
        vals = np.array([rng.uniform(-3, 3) for _ in range(64)], dtype=np.float32)
        if dt is not None:
            data = vals.astype(dt).tobytes()
        else:  # bfloat16: the top half of float32 (truncation: the tests read it, any bits do)
            data = (vals.view(np.uint32) >> 16).astype(np.uint16).tobytes()
        arr = np.frombuffer(data, dtype=np.uint8).reshape(1, -1)
        values = dequantize(arr, qtype).reshape(-1)
        cases.append({"type": qtype.name, "hex": data.hex(),
                      "values": [float(v) for v in values]})
    (OUT / "ggml_blocks.json").write_text(json.dumps({"cases": cases}))
    print(f"wrote {len(cases)} block cases")


def strings():
    fixed = [
        "", " ", "  ", "hello world", "Hello, World!", "HELLO   world\t\n again", "a\n\nb", "x \n y",
        "The quick brown fox jumps over the lazy dog.",
        "PostgreSQL's VACUUM reclaims storage; it's what we'd do, they'll say, I'm sure, we've done",
        "IT'S CAN'T 'S 'Re", "SELECT * FROM pg_stat_activity WHERE state = 'idle';",
        "e-mail: someone@example.com, https://www.postgresql.org/docs/15/index.html",
        "naïve café résumé déjà vu Ångström", "Привет, мир!", "你好，世界！", "東京は日本の首都です。",
        "안녕하세요", "emoji 😀🎉👍🏽 family 👨‍👩‍👧", "math ∑∫√∞ ≤ ≥", "currency $100 €50 ¥1000",
        "3.14159 1,000,000 1e-10 0x1F 2026-12-03 12345678", "snake_case camelCase kebab-case",
        "   leading and trailing   ", "tabs\tand\u00a0nbsp\u3000ideographic", "line\r\nbreaks\r\n\r\n",
        "#hashtag @mention $var %pct ^caret &amp *star", "(parens) [brackets] {braces} <angles>",
        "<|im_start|>user\nhi<|im_end|>", "def f(x):\n    return x ** 2\n\n\n", "    indented",
        "roman Ⅻ superscript x² fractions ½", "a" * 80, "!!!???...", "'", "''", "'s", " 's",
        "control\x01\x02\x7f bytes", "zero\u200bwidth", "１２３ fullwidth digits",
    ]
    rng = random.Random(20261203)
    pieces = ["data", "index", " ", "  ", "\n", "42", "7", "Ünïcödé", "数据库", "🙂", "—", "'ll",
              "PostgreSQL", "I/O", "x86_64", "\t", "pg_dump", "WAL", "¿Qué?", "日本語", "A1b2"]
    out = list(fixed)
    while len(out) < 200:
        out.append("".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))))
    return out


def bpe_cases(reader):
    from tokenizers import Tokenizer, models, pre_tokenizers, Regex, AddedToken
    byte_decoder = {}
    n = 0
    for b in range(256):
        if 33 <= b <= 126 or 161 <= b <= 172 or b >= 174:
            byte_decoder[chr(b)] = b
        else:
            byte_decoder[chr(256 + n)] = b
            n += 1

    def to_text(piece):
        return bytes(byte_decoder[c] for c in piece).decode("utf-8")

    gpt2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
    qwen = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
            r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    llama3 = qwen.replace(r"|\p{N}|", r"|\p{N}{1,3}|")
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    pres = {
        "gpt2": pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        "smollm": pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                           pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                    use_regex=True)]),
        "qwen2": pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(qwen), "isolated"), bl]),
        "llama-bpe": pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(llama3), "isolated"), bl]),
    }
    f = reader.fields
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode("utf-8")
              for i in f["tokenizer.ggml.tokens"].data]
    merges = [bytes(f["tokenizer.ggml.merges"].parts[i]).decode("utf-8")
              for i in f["tokenizer.ggml.merges"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges]))
    tok.pre_tokenizer = pres["smollm"]
    tok.add_special_tokens([AddedToken(t, special=True) for t, ty in zip(tokens, types) if ty == 3])
    cases = []
    for s in strings():
        case = {"text": s, "ids": tok.encode(s, add_special_tokens=False).ids}
        for name, pre in pres.items():
            case[name] = [to_text(p) for p, _ in pre.pre_tokenize_str(s)]
        cases.append(case)
    (OUT / "bpe_cases.json").write_text(json.dumps({"model": "SmolLM2-135M-Instruct",
                                                    "cases": cases}, ensure_ascii=False))
    print(f"wrote {len(cases)} tokenizer cases")
    return tok


def forward(reader, ids):
    """float64 forward of the dequantised weights (llama layout as llama.cpp writes GGUF)."""
    f = reader.fields

    def val(key):
        return f[key].contents()
    L, H, heads = val("llama.block_count"), val("llama.embedding_length"), val("llama.attention.head_count")
    kvh, eps, theta = val("llama.attention.head_count_kv"), val("llama.attention.layer_norm_rms_epsilon"), val("llama.rope.freq_base")
    hd = H // heads
    tensors = {t.name: t for t in reader.tensors}

    def w(name):
        t = tensors[name]
        return dequantize(t.data, t.tensor_type).astype(np.float64).reshape(
            [int(d) for d in reversed(t.shape)])

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

    T = len(ids)
    pos = np.arange(T)[:, None]
    inv = theta ** (-2.0 * np.arange(hd // 2) / hd)
    cos, sin = np.cos(pos * inv), np.sin(pos * inv)

    def rope(x):  # [T, h, hd], adjacent pairs
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * cos[:, None, :] - x1 * sin[:, None, :]
        out[..., 1::2] = x0 * sin[:, None, :] + x1 * cos[:, None, :]
        return out

    emb = w("token_embd.weight")
    x = emb[ids]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(L):
        p = f"blk.{i}."
        xn = rms(x, w(p + "attn_norm.weight"))
        q = rope((xn @ w(p + "attn_q.weight").T).reshape(T, heads, hd))
        k = rope((xn @ w(p + "attn_k.weight").T).reshape(T, kvh, hd))
        v = (xn @ w(p + "attn_v.weight").T).reshape(T, kvh, hd)
        k = np.repeat(k, heads // kvh, axis=1)
        v = np.repeat(v, heads // kvh, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        att = np.einsum("hts,shd->thd", s, v).reshape(T, H)
        x = x + att @ w(p + "attn_output.weight").T
        xn = rms(x, w(p + "ffn_norm.weight"))
        g = xn @ w(p + "ffn_gate.weight").T
        u = xn @ w(p + "ffn_up.weight").T
        x = x + ((g / (1 + np.exp(-g))) * u) @ w(p + "ffn_down.weight").T
    x = rms(x, w("output_norm.weight"))
    out = w("output.weight") if "output.weight" in tensors else emb
    logits = x @ out.T
    m = logits.max(-1, keepdims=True)
    return logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))


def logits_cases(reader, tok):
    system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    questions = ["What is the capital of France?",
                 "Explain in one sentence what a database index is.",
                 "Write the number 12345 backwards, then add 7.",
                 "Context: VACUUM reclaims storage occupied by dead tuples.\nQuestion: What does VACUUM do?"]
    cases = []
    for qn in questions:
        text = (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{qn}<|im_end|>\n"
                f"<|im_start|>assistant\n")
        ids = tok.encode(text, add_special_tokens=False).ids
        lp = forward(reader, ids)
        top = np.argsort(-lp, axis=-1)[:, :5]
        cases.append({"question": qn, "ids": ids, "top_ids": top.tolist(),
                      "top_logprobs": [[round(float(lp[t, j]), 5) for j in row]
                                       for t, row in enumerate(top)]})
        print(f"  {len(ids)} positions, top-1 at the end: {tok.decode([int(top[-1][0])])!r}")
    (OUT / "smollm2_logits.json").write_text(json.dumps({
        "model": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "reference": "float64 NumPy forward of gguf.quants.dequantize'd weights",
        "cases": cases}))
    print(f"wrote {len(cases)} logit cases")


def main():
    reader = gguf.GGUFReader(sys.argv[1])
    ggml_blocks()
    tok = bpe_cases(reader)
    logits_cases(reader, tok)


if __name__ == "__main__":
    main()
