#!/usr/bin/env bash
# One command from a fresh Debian 12 machine: install packages, build Release, and run moepp on
# the bundled default model (models/default: a small MoE++ model trained by moepp itself on Jane
# Austen and Moby Dick, see models/default/TRAINING.md): its `moepp info`, then a greedy
# continuation of a prompt with every token marked by the FFN experts it went through.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
build/bin/moepp info -m models/default
echo "--- generate (greedy, 48 tokens), then the FFN experts each token used:"
build/bin/moepp generate -m models/default -p "It was a fine morning, and Emma" -n 48 --show-experts
