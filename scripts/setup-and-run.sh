#!/usr/bin/env bash
# One command from a fresh Debian 12 machine: install packages, build Release, make the default
# model, and run moepp on it (model info, then greedy generation from a few token ids).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
scripts/make-default-model.sh
build/bin/moepp info -m models/default
echo "--- generate (greedy, 24 tokens from ids 1,15,42,7):"
build/bin/moepp generate -m models/default --ids 1,15,42,7 -n 24 --ignore-eos
