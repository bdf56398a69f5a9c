#!/usr/bin/env bash
# The test command: installs packages, fetches the tokenizer test assets (npm, pinned), builds
# Release and runs the default test labels (unit, moe, model, tokenizer, train, server), then builds with
# AddressSanitizer + UBSan and runs the unit and tokenizer tests (parsers, bad input) under it.
# Usage: scripts/test.sh [--no-sanitize]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/fetch-tokenizer-assets.sh
scripts/fetch-server-test-deps.sh
jobs=$(nproc)
scripts/build.sh build
ctest --test-dir build -L "unit|moe|model|tokenizer|train|server" --output-on-failure -j "$jobs"
if [[ "${1:-}" != "--no-sanitize" ]]; then
  # -O0 without debug info: sanitizer reports still name files and lines, and it compiles about
  # twice as fast as -O1 (measured on api_server.cc and hf_tokenizer.cc), which keeps the whole
  # test command within its budget on 2 cores; the sanitized tests themselves take seconds.
  scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS=-O0 -DMOEPP_SANITIZE=ON
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan -L "unit|tokenizer" --output-on-failure -j "$jobs"
fi
