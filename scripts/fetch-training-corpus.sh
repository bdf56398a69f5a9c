#!/usr/bin/env bash
# Fetches the public-domain English the default model is trained on (../shared/docs/test-assets.md):
# the six Jane Austen novels (Debian r-cran-janeaustenr) and Moby Dick (Debian r-cran-tokenizers).
# Both packages keep the texts as R character vectors in a lazy-load database; the stdlib-only
# reader ../shared/tools/rdb_extract.py turns them into text files (R itself is not needed).
# Output: data/corpus/train/*.txt (five novels + Moby Dick) and data/corpus/val/persuasion.txt
# (the held-out book). Usage: scripts/fetch-training-corpus.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-data/corpus}"
reader="../shared/tools/rdb_extract.py"
if [[ -f "$out/val/persuasion.txt" ]]; then exit 0; fi
[[ -f "$reader" ]] || { echo "fetch-training-corpus: $reader not found (the R lazy-load reader)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download r-cran-janeaustenr=1.0.0-1 r-cran-tokenizers=0.3.0-1 > /dev/null 2>&1)
for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done
lib="$work/root/usr/lib/R/site-library"
python3 "$reader" "$lib/janeaustenr/data/Rdata" "$work/austen" > /dev/null
python3 "$reader" "$lib/tokenizers/data/Rdata" "$work/tokenizers" > /dev/null
mkdir -p "$out/train" "$out/val"
for book in sensesensibility prideprejudice mansfieldpark emma northangerabbey; do
  cp "$work/austen/$book.txt" "$out/train/"
done
cp "$work/austen/persuasion.txt" "$out/val/"
# Moby Dick without the Project Gutenberg header and licence (the lines between the markers).
sed -n '/^\*\*\* START OF THIS PROJECT GUTENBERG/,/^\*\*\* END OF THIS PROJECT GUTENBERG/p' \
  "$work/tokenizers/mobydick.txt" | sed '1d;$d' | sed 's/^\xEF\xBB\xBF//' > "$out/train/mobydick.txt"
echo "fetch-training-corpus: wrote $out ($(cat "$out"/train/*.txt | wc -c) bytes train, $(wc -c < "$out/val/persuasion.txt") bytes validation)"
