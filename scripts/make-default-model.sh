#!/usr/bin/env bash
# Writes the bundled default model to models/default: a tiny random MoE++ checkpoint in the real
# Hugging Face layout (the 7B's code path: 1-layer router, logit std norm, (4+4) experts), made
# with a fixed seed. A trained default model replaces it once the training work lands.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -f models/default/config.json ]]; then exit 0; fi
mkdir -p models
/usr/bin/python3 tools/reference/make_tiny.py --family moepp --preset 7b --format safetensors --dtype bf16 \
  --seed 2024 --out models/default > /dev/null
echo "make-default-model: wrote models/default"
