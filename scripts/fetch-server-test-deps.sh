#!/usr/bin/env bash
# Installs the real OpenAI client the server tests talk to (npm package `openai`, pinned) into
# .cache/npm-server. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
version=4.95.0
if [[ -f .cache/npm-server/node_modules/openai/package.json ]] &&
   grep -q "\"version\": \"$version\"" .cache/npm-server/node_modules/openai/package.json; then exit 0; fi
mkdir -p .cache/npm-server
echo "fetch-server-test-deps: npm install openai@$version"
npm install --prefix .cache/npm-server --no-save --no-audit --no-fund --loglevel=error "openai@$version" > /dev/null
