#!/usr/bin/env python3
"""Writes the reference fixtures the gpu/ tests compare Strata against.

  data/wordpiece_cases.json  ~300 varied strings and the ids that the model's own tokenizer.json
                             gives them (Hugging Face `tokenizers`).
  data/minilm_reference.json ~50 sentences and their all-MiniLM-L6-v2 embeddings from the
                             package's own PyTorch code (sentence-transformers, float32, CPU).

Run it (once, by a developer, with `pip install tokenizers sentence-transformers`) after
tools/fetch-models.sh:  python3 tests/gpu/make_fixtures.py models/all-minilm-l6-v2
The fixtures are committed; the tests do not need Python.
"""
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def tokenizer_strings():
    fixed = [
        "", " ", "hello world", "Hello, World!", "HELLO   world\t\n again",
        "The quick brown fox jumps over the lazy dog.",
        "PostgreSQL's VACUUM reclaims storage occupied by dead tuples.",
        "SELECT * FROM pg_stat_activity WHERE state = 'idle';",
        "e-mail: someone@example.com, url: https://www.postgresql.org/docs/15/index.html",
        "naïve café résumé déjà vu Ångström façade jalapeño", "Crème brûlée über Straße",
        "ÀÁÂÃÄÅ àáâãäå ÇçÑñ ØøÆæŒœ ß", "İstanbul ıi Iİ", "ΣΊΣΥΦΟΣ Σίσυφος οδός ΟΔΟΣ",
        "Привет, мир! Ёлка", "مرحبا بالعالم", "नमस्ते दुनिया", "שלום עולם", "สวัสดีชาวโลก",
        "你好，世界！", "我爱北京天安门", "東京は日本の首都です。", "カタカナ ひらがな 漢字", "안녕하세요 세계",
        "mixed中文and English文字", "𠀀𠀁 rare ideographs 𪜀", "emoji 😀🎉👍🏽 family 👨‍👩‍👧",
        "flags 🇫🇷🇯🇵 and ❤️ ✨", "math ∑∫√∞ ≤ ≥ ≠ ± × ÷", "currency $100 €50 £30 ¥1000 ₹500",
        "quotes “smart” ‘single’ «guillemets» „low“", "dashes – — ‐ ‒ and ellipsis…",
        "a" * 100, "b" * 101, "supercalifragilisticexpialidocious " * 3,
        "pneumonoultramicroscopicsilicovolcanoconiosis", "x" * 250 + " short",
        "control\x00chars\x01here\x7f and \u200b zero width \ufeff bom",
        "tabs\tand\u00a0nbsp\u2003em space\u3000ideographic space",
        "line\u2028separator\u2029paragraph", "soft\u00adhyphen", "combining e\u0301 vs é",
        "fullwidth ＡＢＣ１２３", "ligature ﬁ ﬂ", "roman Ⅻ ⅻ", "superscript x² H₂O",
        "C++ C# F# .NET node.js", "3.14159 1,000,000 1e-10 0x1F", "snake_case camelCase kebab-case",
        "   leading and trailing   ", "UPPER lower MiXeD", "can't won't it's o'clock",
        "#hashtag @mention $var %pct ^caret &amp *star", "(parens) [brackets] {braces} <angles>",
        "path/to/file.txt C:\\Windows\\System32", "a.b.c.d...e", "!!!???...",
    ]
    rng = random.Random(20261123)
    pieces = ["data", "index", "vector", "search", "Ünïcödé", "数据库", "🙂", "—", "naïve",
              "PostgreSQL", "I/O", "x86_64", "façade", "Ελλάδα", "Москва", "é", "\t", "  ",
              "pg_dump", "WAL", "2026-11-23", "¿Qué?", "¡Hola!", "日本語", "한국어", "ÆØÅ"]
    corpus = []
    docs = Path("/usr/share/doc/postgresql-doc-15/html")
    if docs.is_dir():
        import re
        for page in sorted(docs.glob("*.html"))[:60]:
            text = re.sub(r"<[^>]+>", " ", page.read_text(errors="replace"))
            text = re.sub(r"\s+", " ", text)
            for i in range(0, min(len(text), 2000), 400):
                corpus.append(text[i:i + 300])
    out = list(fixed)
    out += corpus[:150]
    while len(out) < 320:
        out.append(" ".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))))
    return out


def main():
    model = Path(sys.argv[1] if len(sys.argv) > 1 else "models/all-minilm-l6-v2")
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    cases = [{"text": s, "ids": tok.encode(s).ids} for s in tokenizer_strings()]
    (HERE / "data" / "wordpiece_cases.json").write_text(
        json.dumps({"model": "all-minilm-l6-v2", "cases": cases}, ensure_ascii=False, indent=0))
    print(f"wrote {len(cases)} tokenizer cases")

    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(str(model), device="cpu")
    sentences = [c["text"] for c in cases if 0 < len(c["text"]) < 400][:40]
    sentences += ["What is a write-ahead log?", "How do I create an index concurrently?",
                  "The cat sat on the mat.", "Vector databases answer nearest-neighbour queries.",
                  "Le chat est sur le tapis.", "Der Hund schläft im Garten.", "猫はマットの上に座った。",
                  "A very long sentence " + "that keeps going and going " * 40,
                  "?", "Strata embeds text itself."]
    emb = st.encode(sentences, batch_size=16, convert_to_numpy=True, normalize_embeddings=False)
    (HERE / "data" / "minilm_reference.json").write_text(json.dumps({
        "model": "all-minilm-l6-v2", "max_seq_length": st.max_seq_length,
        "reference": "sentence-transformers (PyTorch, float32, CPU)",
        "cases": [{"text": s, "embedding": [round(float(x), 6) for x in e]}
                  for s, e in zip(sentences, emb)]}, ensure_ascii=False))
    print(f"wrote {len(sentences)} reference embeddings")


if __name__ == "__main__":
    main()
