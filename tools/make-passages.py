#!/usr/bin/env python3
"""Splits PostgreSQL's HTML documentation (Debian's postgresql-doc-15) into JSONL passages.

Each line: {"id": N, "text": "...", "title": "<page title>", "page": "<file name>"}.
The navigation header/footer divs are dropped; the page text is split at paragraph boundaries into
passages of --min-words to --max-words words (150-250 by default). Deterministic: the same input gives the same
ids. Usage:
  tools/make-passages.py [--docs DIR] [--out passages.jsonl] [--limit N]

With --questions FILE it makes a retrieval test set instead, with no labelling of ours: each
section (h1-h3) of at least --min-words words becomes passages of its body alone (its heading and
the page title left out of the text), and its heading, without the section number, becomes a
question whose gold passages are the section's: {"question": "...", "context_ids": [ids]}.
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
        self.headings = set()  # indexes into blocks of the h1-h3 headings
        self._in_heading = False

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
        if tag in ("h1", "h2", "h3"):
            self._in_heading = True

    def handle_endtag(self, tag):
        if tag in BLOCKS:
            self._flush()
        if tag in ("h1", "h2", "h3"):
            self._in_heading = False
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
            if self._in_heading:
                self.headings.add(len(self.blocks))
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
    ap.add_argument("--questions", default="",
                    help="also write section-title questions here (passages split by section)")
    ap.add_argument("--limit", type=int, default=0,
                    help="keep N passages evenly spread over the whole documentation (0 = all); "
                         "ids stay those of the full split")
    args = ap.parse_args()
    docs = Path(args.docs)
    pages = sorted(docs.glob("*.html"))
    if not pages:
        sys.exit(f"make-passages: no HTML pages under {docs} "
                 "(install Debian's postgresql-doc-15, or pass --docs)")
    rows, questions = [], []
    for page in pages:
        p = PageText()
        p.feed(page.read_text(encoding="utf-8", errors="replace"))
        p.close()
        title = re.sub(r"\s+", " ", p.title).strip()
        if not args.questions:
            for text in passages(p.blocks, args.min_words, args.max_words):
                rows.append({"id": len(rows), "text": text, "title": title, "page": page.name})
            continue
        sections, heading, body = [], None, []
        for i, b in enumerate(p.blocks):
            if i in p.headings:
                sections.append((heading, body))
                heading, body = b, []
            else:
                body.append(b)
        sections.append((heading, body))
        for heading, body in sections:
            if heading is None or sum(len(b.split()) for b in body) < args.min_words:
                continue
            question = re.sub(r"^(Appendix [A-Z]\.|Part [IVXLC]+\.|[A-Z]?[0-9.]+)\s+", "",
                              heading).strip()
            if len(question.split()) < 2:
                continue  # a bare command name is a lookup, not a question
            ids = []
            for text in passages(body, args.min_words, args.max_words):
                ids.append(len(rows))
                rows.append({"id": len(rows), "text": text, "title": "", "page": page.name})
            questions.append({"question": question, "context_ids": ids})
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
    if args.questions:
        with open(args.questions, "w", encoding="utf-8") as f:
            for q in questions:
                f.write(json.dumps(q, ensure_ascii=False) + "\n")
        print(f"make-passages: {len(questions)} section-title questions", file=sys.stderr)


if __name__ == "__main__":
    main()
