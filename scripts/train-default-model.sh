#!/usr/bin/env bash
# Reproduces the bundled models from scratch (about 50 minutes on 2 cores with the three runs side
# by side): the corpus, the SentencePiece vocabulary, then three trainings on the same tokens with
# the same schedule (configs/train-default.json):
#   models/default  MoE++ (8 FFN + 4 zero-computation experts, top-2), the default model
#   models/draft    a small MoE++ draft for speculative decoding
#   out/vanilla     the vanilla MoE twin (8 FFN experts, top-2) for the comparison in docs/training.md
# Usage: scripts/train-default-model.sh [WORK_DIR]   (logs and f32 exports land in WORK_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-out/train-default}"
mkdir -p "$work"
scripts/fetch-training-corpus.sh data/corpus
build/bin/moepp train-tokenizer -f data/corpus/train/*.txt -o "$work/tok" --vocab-size 4096 2> "$work/tokenizer.log"
train() {  # name, model config, threads
  build/bin/moepp train --config configs/train-default.json --model-config "$2" --tokenizer "$work/tok" \
    --data data/corpus/train/*.txt --val-data data/corpus/val/persuasion.txt \
    --out "$work/$1" --checkpoint-dir "$work/ck-$1" --threads "$3" 2> "$work/log-$1.txt"
}
train moepp configs/default-moepp.json 1 &
train vanilla configs/default-vanilla.json 1 &
wait
train draft configs/default-draft.json 2
build/bin/moepp convert -m "$work/moepp" -o models/default --dtype bf16
build/bin/moepp convert -m "$work/draft" -o models/draft --dtype bf16
build/bin/moepp convert -m "$work/vanilla" -o out/vanilla --dtype bf16
echo "train-default-model: wrote models/default, models/draft and out/vanilla; logs in $work"
