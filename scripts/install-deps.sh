#!/usr/bin/env bash
# Installs the Debian 12 packages moepp needs to build and test. Idempotent: does nothing when
# everything is already there. Usage: scripts/install-deps.sh [--fuzz]
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config           # toolchain
  libgtest-dev libgmock-dev                  # tests
  nlohmann-json3-dev libcli11-dev            # JSON, command line
  python3-torch python3-numpy                # PyTorch reference for the model tests (/usr/bin/python3)
  chromium python3-pil                       # routing report rendering test (headless screenshot)
  libsentencepiece-dev libpcre2-dev libutf8proc-dev   # tokenizers
  libcpp-httplib-dev curl wrk                 # server, its tests and load test
  libopenblas-dev                            # sgemm for training
  sentencepiece python3-sentencepiece python3-jinja2  # tokenizer and chat-template test oracles
)
if [[ "${1:-}" == "--fuzz" ]]; then
  packages+=(clang-14 libfuzzer-14-dev libclang-rt-14-dev)
fi

# Node.js + npm fetch the tokenizer test assets; any install that provides both will do
# (Debian's nodejs + npm, or a vendor build that bundles npm).
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
