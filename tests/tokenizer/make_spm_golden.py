#!/usr/bin/python3
"""Golden ids for the SentencePiece backend, from the real SentencePiece (Debian
python3-sentencepiece 0.1.97) on the LLaMA-1/2 tokenizer.model.

  /usr/bin/python3 tests/tokenizer/make_spm_golden.py [ASSETS_DIR]
  (text sources: apt-get install fortunes-min bible-kjv jargon-text)

Writes tests/tokenizer/data/llama_spm_golden.jsonl, one object per line:
  text | text_hex   the input (hex when it is not valid UTF-8)
  ids               sp.encode(text): what the C++ tokenizer must give without BOS/EOS
  decoded           sp.decode(ids); roundtrip = (decoded == text)
  ids_special       (only when text spells <s>, </s> or <unk>) transformers' slow
                    LlamaTokenizer, legacy=True: text split on those tokens (leftmost-longest),
                    each piece sp.encode'd, the tokens' ids in between
  ids_albert        (edge cases only) sp.encode(text) with albert-30k-clean.model, a unigram
                    model with an NFKC precompiled_charsmap and no BOS/EOS
  ids_nonlegacy     the same for legacy=False (LlamaTokenizer.tokenize/_tokenize of transformers
                    4.36-4.46, replayed here with the real SentencePiece and add_dummy_prefix off)
The special-token splitting and the non-legacy steps are a replay of transformers' Python code,
not transformers itself (not installable here); the per-segment ids are SentencePiece's own.
"""
import gzip
import json
import os
import random
import subprocess
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ASSETS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".cache", "tokenizer-assets")
MODEL = os.path.join(ASSETS, "sentencepiece", "llama-tokenizer.model")
OUT = os.path.join(HERE, "data", "llama_spm_golden.jsonl")
SPECIALS = {"<unk>": 0, "<s>": 1, "</s>": 2}
SPIECE = "\u2581"

serialized = open(MODEL, "rb").read()
sp = spm.SentencePieceProcessor(model_proto=serialized)
# normalizer_spec.add_dummy_prefix = false, merged by protobuf (what transformers does for legacy=False).
sp_np = spm.SentencePieceProcessor(model_proto=serialized + b"\x1a\x02\x18\x00")
assert sp.get_piece_size() == 32000
albert = spm.SentencePieceProcessor(model_file=os.path.join(ASSETS, "sentencepiece", "albert-30k-clean.model"))


def split_specials(text):
    """transformers' Trie.split over the special tokens: leftmost-longest."""
    out, start, i = [], 0, 0
    toks = sorted(SPECIALS, key=len, reverse=True)
    while i < len(text):
        hit = next((t for t in toks if text.startswith(t, i)), None)
        if hit is None:
            i += 1
            continue
        out.append(text[start:i])
        out.append(hit)
        i += len(hit)
        start = i
    out.append(text[start:])
    return [s for s in out if s]


def encode_special_legacy(text):
    ids = []
    for seg in split_specials(text):
        ids += [SPECIALS[seg]] if seg in SPECIALS else sp.encode(seg)
    return ids


def encode_nonlegacy(text):
    if not text:
        return []
    text = SPIECE + text.replace(SPIECE, " ")
    unk_len = len(sp_np.encode("<unk>"))
    tokens = []  # (piece, id)
    for seg in split_specials(text):
        if seg in SPECIALS:
            tokens.append((seg, SPECIALS[seg]))
            continue
        if not seg.startswith((SPIECE, " ")):
            ids = sp_np.encode(seg)
        else:
            ids = sp_np.encode("<unk>" + seg)
            ids = ids[unk_len:] if len(ids) >= unk_len else ids
        tokens += [(sp_np.id_to_piece(i), i) for i in ids]
    if len(tokens) > 1 and tokens[0][0] == SPIECE and tokens[1][0] in SPECIALS:
        tokens = tokens[1:]
    return [i for _, i in tokens]


def corpus_texts(rng):
    texts = []
    # Fortunes (Debian fortunes-min): %-separated short texts, kept with their newlines.
    fortunes = []
    for name in ("fortunes", "literature", "riddles"):
        path = os.path.join("/usr/share/games/fortunes", name)
        with open(path, encoding="utf-8", errors="replace") as f:
            fortunes += [t.strip("\n") for t in f.read().split("\n%\n") if t.strip()]
    texts += rng.sample(fortunes, 110)
    # King James Bible (Debian bible-kjv): single verses and one whole chapter.
    kjv = subprocess.run(["bible", "-f", "gen1:1-rev22:21"], capture_output=True, text=True, check=True).stdout
    verses = [line.split(" ", 1)[1] for line in kjv.splitlines() if " " in line]
    texts += rng.sample(verses, 60)
    texts.append(" ".join(verses[:31]))  # Genesis 1
    # The Jargon File (Debian jargon-text): lines, including box-drawing tables.
    with gzip.open("/usr/share/doc/jargon-text/jargon.txt.gz", "rt", encoding="utf-8") as f:
        jargon = [line for line in f.read().splitlines() if line.strip()]
    texts += rng.sample(jargon, 60)
    return texts


EDGE = [
    "", " ", "  ", "   ", " " * 10, "\t", "\n", "\n\n", "\r\n", " \n ", "\t\t\t", "a  b", "a   b",
    " leading", "  two leading", "trailing ", "trailing  ", "  both  ", "tab\there", "line1\nline2\n",
    "mixed \t \n whitespace", "0", "7", "12345", "3.14159", "1,000,000", "2024-01-01T12:00:00Z",
    "0x1F 0b1010 1e-9", "Hello", "hello", "HELLO", "Hello, world!", "MiXeD cAsE", "I've don't can't",
    "!!!???...", "\u2014\u2013-", "\u201cquotes\u201d \u2018single\u2019", "na\u00efve caf\u00e9 r\u00e9sum\u00e9",
    "antidisestablishmentarianism", "Pneumonoultramicroscopicsilicovolcanoconiosis", "a" * 500,
    "ab" * 300, "x" * 50 + " " + "y" * 50, "\U0001F999" * 20,
    "\u4f60\u597d\uff0c\u4e16\u754c", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u05e9\u05dc\u05d5\u05dd", "\u0928\u092e\u0938\u094d\u0924\u0947", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac", "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440",
    "\U0001F44D\U0001F3FD", "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466", "e\u0301", "Ame\u0301lie",
    "A\u030a", "Z\u0324\u0354\u0367\u0311\u0313a\u0308\u0356\u032d\u0308\u0307l\u036e\u0312\u036b",
    "\u2211\u222b\u221a\u221e\u2260\u2248", "\ue000", "\U0010FFFF", "\U0001D573\U0001D58A\U0001D591\U0001D591\U0001D594",
    "\u00a0nbsp", "\u200bzero width", "\ufeffBOM", "a\u2028b", "\u3000ideographic space",
    "\x00", "a\x00b", "\x7f", "\x01\x02\x03",
    "<s>", "</s>", "<unk>", "<s>Hello</s>", "Hello <s> world", "a</s>b", "<s><s>", "< s >", "<<s>>",
    "</s> leading", "trailing <s>", " <s> ", "<s>\n", "<unk><unk>", "<pad>", "<0x0A>", "[INST] hi [/INST]",
    "\u2581", "\u2581\u2581hello", "hello\u2581world", " \u2581 ",
    "def f(x):\n    return x ** 2\n", "http://example.com/path?q=1&b=2#frag", '{"key": [1, 2.5, null]}',
    "The llama (/\u02c8l\u0251\u02d0m\u0259/; \U0001F999Spanish pronunciation: [\u02c8\u028eama])",
]
INVALID = [b"\xff", b"\xfe\xff", b"abc\x80def", b"\xc3", b"\xc3\x28", b"\xe2\x82", b"\xe2\x82 x",
           b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"ok \xf0\x9f\xa6 cut emoji", b"\x80\x80\x80"]


def main():
    rng = random.Random(20240611)
    texts = EDGE + corpus_texts(rng)
    rows = []
    for n, t in enumerate(texts):
        ids = sp.encode(t)
        dec = sp.decode(ids)
        row = {"text": t, "ids": ids, "decoded": dec, "roundtrip": dec == t}
        if any(s in t for s in SPECIALS):
            row["ids_special"] = encode_special_legacy(t)
        row["ids_nonlegacy"] = encode_nonlegacy(t)
        if n < len(EDGE):
            row["ids_albert"] = albert.encode(t)
        rows.append(row)
    for b in INVALID:
        # SentencePiece (0.1.97) takes bytes: its normaliser turns each invalid byte into U+FFFD.
        ids = sp.encode_as_ids(b)
        dec = sp.decode(ids)
        rows.append({"text_hex": b.hex(), "ids": ids, "decoded": dec, "roundtrip": False})
    with open(OUT, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows, {os.path.getsize(OUT)} bytes, "
          f"{sum(r['roundtrip'] for r in rows)} round-trip")


if __name__ == "__main__":
    main()
