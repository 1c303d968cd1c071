#!/usr/bin/env python3
"""Batch-1 decode of 8-bit or 4-bit weights, CompactLM vs llama.cpp's Q8_0 or MXFP4: same machine,
same weights, same run, alternating rounds.

  # llama.cpp through node-llama-cpp, installed OUTSIDE the project:
  #   mkdir /tmp/nlc && cd /tmp/nlc && npm install node-llama-cpp@3.21.1
  python3 bench/quant_vs_llamacpp.py --nlc /tmp/nlc --tokenizer ../shared/tokenizers/llama2/tokenizer.bin

The model is clm_bench_decode's random ~110M Llama (dim 768, 12 layers, hidden 2048, vocab 32000),
exported once as llama2.c and converted to a Q8_0 GGUF by `clm convert --dtype q8_0`. CompactLM runs
the same weights (the benchmark builds them from the same seed) quantized in memory, the output head
included (--quant-head, as the Q8_0 file has it): W8A8 (int8 codes per output channel, activations
int8 per token, int32 dot products) and weight-only int8 (f32 activations). llama.cpp's Q8_0 product
quantizes activations to Q8_0 blocks as well: it is W8A8 with blocks of 32.

--format mxfp4: the GGUF holds ggml MXFP4 blocks written from CompactLM's own OCP MX codes (`clm convert
--dtype mxfp4`); CompactLM runs the same codes with int8 activations per block of 32 (w4a8: llama.cpp's
own design, whose MXFP4 product quantizes the activations to Q8_0), weight-only (w4mx: f32
activations) and, for its W4A4 path, NVFP4 W4A4 of the same f32 weights (w4a4: a different 4-bit
format). The head is quantized in every row."""
import argparse, json, os, statistics, subprocess

here = os.path.dirname(os.path.abspath(__file__))
p = argparse.ArgumentParser()
p.add_argument("--nlc", required=True, help="folder where node-llama-cpp is installed")
p.add_argument("--tokenizer", required=True, help="llama2.c tokenizer.bin with 32000 tokens")
p.add_argument("--bench", default=os.path.join(here, "..", "build", "bench", "clm_bench_decode"))
p.add_argument("--clm", default=os.path.join(here, "..", "build", "clm"))
p.add_argument("--model", default="/tmp/clm_bench_110m.bin")
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--threads", default="1,2", help="thread counts, each measured for both")
p.add_argument("--format", default="q8_0", choices=["q8_0", "mxfp4"], help="the GGUF weight type and the CompactLM paths beside it")
p.add_argument("--tags", default="", help="CompactLM rows, comma-separated (default: every path of the format)")
a = p.parse_args()

if not os.path.exists(a.model):
    subprocess.run([a.bench, "--tokens", "4", "--only", "f32", "--export-llama2c", a.model], check=True, capture_output=True)
gguf = a.model + "." + a.format + ".gguf"
peer = "llama.cpp " + a.format
tags = ("w8a8", "w8", "bf16") if a.format == "q8_0" else ("w4a8", "w4a4", "w4mx", "bf16")
if a.tags: tags = tuple(a.tags.split(","))
if not os.path.exists(gguf):
    subprocess.run([a.clm, "convert", "--model", a.model, "--tokenizer", a.tokenizer, "--to", "gguf", "--dtype", a.format, "--out", gguf],
                   check=True, capture_output=True)
rows = {}
for r in range(a.rounds):
    for t in a.threads.split(","):
        env = dict(os.environ, OMP_NUM_THREADS=t)
        for tag in tags:
            o = json.loads(subprocess.run([a.bench, "--tokens", "64", "--threads", t, "--only", tag, "--quant-head"], env=env, check=True,
                                          capture_output=True, text=True).stdout.strip().splitlines()[-1])
            rows.setdefault((tag, t), []).append(o[tag]["decode_tok_s"])
        out = subprocess.run(["node", os.path.join(here, "nlc_decode.mjs"), a.nlc, gguf, t, "64", "32", t], capture_output=True, text=True,
                             check=True).stdout.strip().splitlines()[-1]
        rows.setdefault((peer, t), []).append(json.loads(out)["decode_tok_s"])
        print(f"round {r}, {t} thread(s): " + ", ".join(f"{k[0]} {v[-1]:.1f}" for k, v in rows.items() if k[1] == t), flush=True)
med = statistics.median
for t in a.threads.split(","):
    base = rows[(peer, t)]
    print(f"{t} thread(s), decode tok/s medians: " + ", ".join(f"{k[0]} {med(v):.1f}" for k, v in rows.items() if k[1] == t) +
          "".join(f" | {tag} / {peer} per round: {', '.join(f'{x / y:.2f}' for x, y in zip(rows[(tag, t)], base))}" for tag in tags if tag != "bf16"))
