#!/usr/bin/env python3
"""`moepp train-tokenizer` against the SentencePiece Python library (Debian python3-sentencepiece):
a vocabulary trained on the golden texts loads in both, and moepp encodes every text exactly as
the library does with the trained model; bad input gives a one-line error."""
import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--moepp", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    import sentencepiece as spm
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    rows = [json.loads(l) for l in open(os.path.join(HERE, "data", "llama_spm_golden.jsonl"), encoding="utf-8")]
    texts = [r["text"] for r in rows if "text" in r]  # (text_hex rows hold invalid UTF-8 on purpose)
    corpus = os.path.join(a.work, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        for t in texts:
            if t.strip():
                f.write(t.replace("\n", " ") + "\n")
    out = os.path.join(a.work, "tok")
    r = subprocess.run([a.moepp, "train-tokenizer", "-f", corpus, "-o", out, "--vocab-size", "600"],
                       capture_output=True, text=True)
    failures = []
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        return 1
    sp = spm.SentencePieceProcessor(model_file=os.path.join(out, "tokenizer.model"))
    if sp.get_piece_size() != 600 or sp.id_to_piece(1) != "<s>" or sp.id_to_piece(2) != "</s>":
        failures.append(f"vocabulary: {sp.get_piece_size()} pieces, ids 1/2 = {sp.id_to_piece(1)}/{sp.id_to_piece(2)}")
    sample = [t for t in texts if t.strip() and "\x00" not in t][:120]
    for t in sample:
        # The library does not parse special-token text; HF-style parsing is moepp's default.
        r = subprocess.run([a.moepp, "tokenize", "-m", out, "-p", t, "--no-parse-special"], capture_output=True, text=True)
        got = json.loads(r.stdout) if r.returncode == 0 else r.stderr
        want = [1] + sp.encode(t)
        if got != want:
            failures.append(f"{t[:40]!r}: moepp {got[:12]} vs sentencepiece {want[:12]}")
    bad = subprocess.run([a.moepp, "train-tokenizer", "-f", os.path.join(a.work, "missing.txt"), "-o", out],
                         capture_output=True, text=True)
    if bad.returncode == 0 or "missing.txt" not in bad.stderr or len(bad.stderr.strip().splitlines()) != 1:
        failures.append("missing input file: expected one error line naming it, got " + bad.stderr)
    bad = subprocess.run([a.moepp, "train-tokenizer", "-f", corpus, "-o", out, "--vocab-size", "5"], capture_output=True, text=True)
    if bad.returncode == 0 or "--vocab-size" not in bad.stderr:
        failures.append("bad --vocab-size: " + bad.stderr)
    for f in failures:
        print("FAIL", f)
    print(f"{len(sample)} texts encoded; {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
