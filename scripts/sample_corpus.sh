#!/usr/bin/env bash
# A corpus sampled from a model itself (clm generate --samples: temperature 1, one seed per sample, each up to LEN tokens or
# its end-of-sequence): train / valid / test splits with disjoint seeds. For compressing or distilling a
# model whose training text is not at hand (e.g. stories260K): the original's own distribution is then
# the data, and its perplexity on the held-out samples is the baseline. A sampled beginning-of-sequence
# token (llama2.c models mark a new story with it) is written as a line break, not as the text "<s>".
# Usage: [LEN=400] scripts/sample_corpus.sh MODEL TOKENIZER OUT_DIR [TRAIN_SAMPLES=2000] [HELD_OUT_SAMPLES=200]
#   e.g. scripts/sample_corpus.sh ../shared/models/stories260K/stories260K.bin ../shared/models/stories260K/tok512.bin runs/stories-self
set -euo pipefail
model=$1; tok=$2; out=$3; ntrain=${4:-2000}; nheld=${5:-200}
clm=${CLM:-./build/clm}
mkdir -p "$out"
split() {  # name first_seed count: one load of the model, a sample per seed, each followed by an empty line
  local f="$out/$1.txt"
  $clm generate --model "$model" --tokenizer "$tok" --temperature 1 --seed "$2" --samples "$3" --max-new-tokens "${LEN:-400}" \
    --threads 1 2>/dev/null | sed 's/<s>/\n/g' > "$f.part"
  mv "$f.part" "$f"
  echo "$f: $3 samples, $(wc -w < "$f") words"
}
split train 1 "$ntrain"
split valid 1000001 "$nheld"
split test 2000001 "$nheld"
