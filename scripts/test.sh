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
  # twice as fast as -O1 (measured on api_server.cc and hf_tokenizer.cc): on 2 cores the
  # sanitizer build is the largest part of the test command.
  # Only what the sanitized labels run (not the moe and train test programs), and not the two
  # large golden-vector suites nor the SentencePiece trainer run: they check results already
  # checked in Release and take most of the sanitized run at -O0.
  mkdir -p build-asan
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS=-O0 -DMOEPP_SANITIZE=ON \
    > build-asan/configure.log 2>&1 || { cat build-asan/configure.log; exit 1; }
  cmake --build build-asan -j "$jobs" --target moepp moepp_unit_tests moepp_io_tests moepp_tokenizer_tests \
    moepp_eval_tests moepp_bench_tests moepp_server_tests
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan -L "unit|tokenizer" --output-on-failure -j "$jobs" \
      -E 'HfTokenizerVectors\.(Llama3TokenizerJs|LenmlGoldens)|tokenizer\.train_tokenizer'
fi
