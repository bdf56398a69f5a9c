#!/usr/bin/env bash
# Configures and builds moepp. Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]
# Default: build/ in Release with Ninja. Binaries land in BUILD_DIR/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build}"
shift || true
mkdir -p "$dir"
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" > "$dir/configure.log" 2>&1 || { cat "$dir/configure.log"; exit 1; }
cmake --build "$dir" -j "$(nproc)"
