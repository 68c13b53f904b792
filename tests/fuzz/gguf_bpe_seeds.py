#!/usr/bin/env python3
"""Seeds of fuzz_gguf (a minimal llama GGUF: metadata, a tokenizer, two tensors) and fuzz_bpe
(a few texts), written into the corpus directory given (tests/fuzz/make_corpus.sh calls it)."""
import os, struct, sys
out = sys.argv[1]
os.makedirs(out + "/fuzz_gguf", exist_ok=True)
os.makedirs(out + "/fuzz_bpe", exist_ok=True)
def s(x):
    b = x.encode(); return struct.pack('<Q', len(b)) + b
def kv_str(k, v): return s(k) + struct.pack('<I', 8) + s(v)
def kv_u32(k, v): return s(k) + struct.pack('<II', 4, v)
def kv_f32(k, v): return s(k) + struct.pack('<If', 6, v)
def kv_strs(k, vs): return s(k) + struct.pack('<IIQ', 9, 8, len(vs)) + b''.join(s(v) for v in vs)
def kv_i32s(k, vs): return s(k) + struct.pack('<IIQ', 9, 5, len(vs)) + b''.join(struct.pack('<i', v) for v in vs)
toks = [chr(c) for c in range(33, 127)] + ['<|im_start|>', '<|im_end|>', 'he', 'll']
kvs = [kv_str('general.architecture', 'llama'), kv_u32('llama.block_count', 1),
       kv_u32('llama.embedding_length', 32), kv_u32('llama.feed_forward_length', 64),
       kv_u32('llama.attention.head_count', 2), kv_u32('llama.context_length', 64),
       kv_f32('llama.attention.layer_norm_rms_epsilon', 1e-5), kv_str('tokenizer.ggml.model', 'gpt2'),
       kv_str('tokenizer.ggml.pre', 'smollm'), kv_strs('tokenizer.ggml.tokens', toks),
       kv_strs('tokenizer.ggml.merges', ['h e', 'l l']),
       kv_i32s('tokenizer.ggml.token_type', [1] * (len(toks) - 4) + [3, 3, 1, 1])]
tensors = [('token_embd.weight', 8, [32, len(toks)]), ('output_norm.weight', 0, [32])]
def size(t, shape):
    n = 1
    for d in shape: n *= d
    return n * 4 if t == 0 else n // 32 * 34
body = b''; infos = b''; off = 0
for name, t, shape in tensors:
    infos += s(name) + struct.pack('<I', len(shape)) + b''.join(struct.pack('<Q', d) for d in shape) + struct.pack('<IQ', t, off)
    off += (size(t, shape) + 31) // 32 * 32
head = b'GGUF' + struct.pack('<IQQ', 3, len(tensors), len(kvs)) + b''.join(kvs) + infos
head += b'\0' * ((32 - len(head) % 32) % 32)
data = bytearray(off)
for i in range(0, len(data), 34): data[i:i+2] = struct.pack('<e', 0.01)
open(out + "/fuzz_gguf/tiny.gguf", 'wb').write(head + bytes(data))
for i, t in enumerate(["hello world", "it's 2026-12-03, isn't it?\n\n  ok", "<|im_start|>user\nhi<|im_end|>",
                       "naïve café 東京 😀 \t\r\n", "x" * 300]):
    open(out + f"/fuzz_bpe/seed{i}", 'w', encoding='utf-8').write(t)
