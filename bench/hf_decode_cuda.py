#!/usr/bin/env python3
"""Peer of clm_bench_decode_cuda: Hugging Face transformers' LlamaForCausalLM of the same shape
(random weights, bf16 or f32, on the GPU), a prompt of --prompt tokens, then --tokens decoded
greedily with its KV cache, one forward per token (what generate() does). Median of --rounds.
--compile: generate() with a static cache and torch.compile(mode="reduce-overhead") (CUDA graphs),
PyTorch's fastest batch-1 setting. Prints one JSON line."""
import argparse, json, statistics, time
import torch
from transformers import LlamaConfig, LlamaForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--dim", type=int, default=768); ap.add_argument("--layers", type=int, default=12)
ap.add_argument("--heads", type=int, default=12); ap.add_argument("--kv-heads", type=int, default=4)
ap.add_argument("--hidden", type=int, default=2048); ap.add_argument("--vocab", type=int, default=32000)
ap.add_argument("--prompt", type=int, default=128); ap.add_argument("--tokens", type=int, default=256)
ap.add_argument("--rounds", type=int, default=3); ap.add_argument("--weights", default="bf16")
ap.add_argument("--compile", action="store_true")
a = ap.parse_args()
dt = torch.bfloat16 if a.weights == "bf16" else torch.float32
cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.dim, intermediate_size=a.hidden, num_hidden_layers=a.layers,
                  num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, max_position_embeddings=a.prompt + a.tokens + 8,
                  tie_word_embeddings=False)
torch.manual_seed(0)
torch.set_default_dtype(dt)
with torch.device("cuda"):  # initialised on the GPU: a 7B model in seconds
    model = LlamaForCausalLM(cfg).eval()
ids = torch.tensor([[(i * 7919) % a.vocab for i in range(a.prompt)]], device="cuda")
dec, pre = [], []
if a.compile:
    model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
with torch.no_grad():
    for r in range(a.rounds + 1):
        if a.compile:
            torch.cuda.synchronize(); t0 = time.time()
            model.generate(ids, max_new_tokens=1, do_sample=False, cache_implementation="static")
            torch.cuda.synchronize(); p = time.time() - t0
            t1 = time.time()
            model.generate(ids, max_new_tokens=a.tokens + 1, min_new_tokens=a.tokens + 1, do_sample=False, cache_implementation="static")
            torch.cuda.synchronize(); d = time.time() - t1 - p
        else:
            torch.cuda.synchronize(); t0 = time.time()
            out = model(input_ids=ids, use_cache=True)
            tok = out.logits[:, -1].argmax(-1, keepdim=True); pkv = out.past_key_values
            torch.cuda.synchronize(); p = time.time() - t0
            t1 = time.time()
            for _ in range(a.tokens):
                out = model(input_ids=tok, past_key_values=pkv, use_cache=True)
                tok = out.logits[:, -1].argmax(-1, keepdim=True); pkv = out.past_key_values
            torch.cuda.synchronize(); d = time.time() - t1
        if r:
            dec.append(a.tokens / d); pre.append(a.prompt / p)
params = sum(p.numel() for p in model.parameters())
print(json.dumps({"impl": "transformers" + (" compile+static" if a.compile else ""), "torch": torch.__version__,
                  "device": torch.cuda.get_device_name(), "params": params, "weights": a.weights, "prompt": a.prompt,
                  "tokens": a.tokens, "decode_tok_s": statistics.median(dec), "decode_tok_s_all": dec,
                  "prefill_tok_s": statistics.median(pre)}))
