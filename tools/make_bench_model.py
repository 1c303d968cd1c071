#!/usr/bin/env python3
"""A random-weight byte-level Llama as a CompactLM checkpoint folder, for speed benchmarks (serving,
decoding) where quality does not matter: config.json, model.safetensors (f32), tokenizer.json.

  /usr/bin/python3 tools/make_bench_model.py OUT_DIR [d_model n_layers d_ff]   (defaults: 1024 8 2816)
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import CONFIGS, write_safetensors  # noqa: E402


def main():
    out = sys.argv[1]
    D, L, Fd = (int(a) for a in (sys.argv[2:5] if len(sys.argv) >= 5 else (1024, 8, 2816)))
    H = max(1, D // 64)
    cfg = dict(CONFIGS["llama_tiny"], vocab_size=257, d_model=D, n_layers=L, n_heads=H, n_kv_heads=max(1, H // 2), d_ff=Fd,
               max_seq_len=1024)
    g = torch.Generator().manual_seed(7)
    hd, K = D // H, max(1, H // 2)
    w = lambda *s: torch.randn(*s, generator=g) * 0.02
    p = {"model.embed_tokens.weight": w(257, D), "model.norm.weight": torch.ones(D), "lm_head.weight": w(257, D)}
    for l in range(L):
        pre = f"model.layers.{l}"
        p[pre + ".input_layernorm.weight"] = torch.ones(D)
        p[pre + ".post_attention_layernorm.weight"] = torch.ones(D)
        p[pre + ".self_attn.q_proj.weight"] = w(H * hd, D)
        p[pre + ".self_attn.k_proj.weight"] = w(K * hd, D)
        p[pre + ".self_attn.v_proj.weight"] = w(K * hd, D)
        p[pre + ".self_attn.o_proj.weight"] = w(D, H * hd)
        p[pre + ".mlp.gate_proj.weight"] = w(Fd, D)
        p[pre + ".mlp.up_proj.weight"] = w(Fd, D)
        p[pre + ".mlp.down_proj.weight"] = w(D, Fd)
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(out, "model.safetensors"), p, {"format": "compactlm"})
    with open(os.path.join(out, "config.json"), "w") as f: json.dump(cfg, f, indent=1)
    with open(os.path.join(out, "tokenizer.json"), "w") as f: json.dump({"type": "byte"}, f)
    n = sum(v.numel() for v in p.values())
    print(f"wrote {out}: {n / 1e6:.1f}M parameters ({4 * n / 2**20:.0f} MiB f32)")


if __name__ == "__main__":
    main()
