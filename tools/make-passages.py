#!/usr/bin/env python3
"""Splits PostgreSQL's HTML documentation (Debian's postgresql-doc-15) into JSONL passages.

Each line: {"id": N, "text": "...", "title": "<page title>", "page": "<file name>"}.
The navigation header/footer divs are dropped; the page text is split at paragraph boundaries into
passages of about --words words (150-250 by default). Deterministic: the same input gives the same
ids. Usage:
  tools/make-passages.py [--docs DIR] [--out passages.jsonl] [--limit N]
"""
import argparse
import html.parser
import json
import re
import sys
from pathlib import Path

SKIP_CLASSES = {"navheader", "navfooter"}
BLOCKS = {"p", "pre", "li", "dt", "dd", "h1", "h2", "h3", "h4", "tr", "div", "table", "title"}


class PageText(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.blocks = []
        self._buf = []
        self._skip_depth = 0  # >0 inside a navigation div
        self._div_stack = []
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "div":
            cls = dict(attrs).get("class", "") or ""
            skip = bool(SKIP_CLASSES & set(cls.split()))
            self._div_stack.append(skip)
            if skip:
                self._skip_depth += 1
        if tag == "title":
            self._in_title = True
        if tag in BLOCKS:
            self._flush()

    def handle_endtag(self, tag):
        if tag in BLOCKS:
            self._flush()
        if tag == "title":
            self._in_title = False
        if tag == "div" and self._div_stack:
            if self._div_stack.pop():
                self._skip_depth -= 1

    def handle_data(self, data):
        if self._in_title:
            self.title += data
            return
        if self._skip_depth == 0:
            self._buf.append(data)

    def _flush(self):
        text = re.sub(r"\s+", " ", "".join(self._buf)).strip()
        if text:
            self.blocks.append(text)
        self._buf = []


def passages(blocks, lo, hi):
    """Greedy packing of paragraphs into passages of lo..hi words (long paragraphs are cut)."""
    out, cur = [], []
    for b in blocks:
        words = b.split()
        while len(words) > hi:
            room = hi - len(cur)
            cur.extend(words[:room])
            out.append(cur)
            cur, words = [], words[room:]
        if len(cur) + len(words) > hi and len(cur) >= lo:
            out.append(cur)
            cur = []
        cur.extend(words)
        if len(cur) >= lo:
            out.append(cur)
            cur = []
    if cur:
        if out and len(cur) < lo // 2:
            out[-1].extend(cur)
        else:
            out.append(cur)
    return [" ".join(p) for p in out]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", default="/usr/share/doc/postgresql-doc-15/html")
    ap.add_argument("--out", default="-")
    ap.add_argument("--min-words", type=int, default=150)
    ap.add_argument("--max-words", type=int, default=250)
    ap.add_argument("--limit", type=int, default=0,
                    help="keep N passages evenly spread over the whole documentation (0 = all); "
                         "ids stay those of the full split")
    args = ap.parse_args()
    docs = Path(args.docs)
    pages = sorted(docs.glob("*.html"))
    if not pages:
        sys.exit(f"make-passages: no HTML pages under {docs} "
                 "(install Debian's postgresql-doc-15, or pass --docs)")
    rows = []
    for page in pages:
        p = PageText()
        p.feed(page.read_text(encoding="utf-8", errors="replace"))
        p.close()
        title = re.sub(r"\s+", " ", p.title).strip()
        for text in passages(p.blocks, args.min_words, args.max_words):
            rows.append({"id": len(rows), "text": text, "title": title, "page": page.name})
    if args.limit and args.limit < len(rows):
        step = len(rows) / args.limit
        rows = [rows[int(i * step)] for i in range(args.limit)]
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")
    for r in rows:
        out.write(json.dumps(r, ensure_ascii=False) + "\n")
    if out is not sys.stdout:
        out.close()
    n = len(rows)
    print(f"make-passages: {n} passages from {len(pages)} pages", file=sys.stderr)


if __name__ == "__main__":
    main()
