#!/usr/bin/env python3
"""PyTorch peer for batch-1 decoding: reads a llama2.c checkpoint (the model clm_bench_decode
exports), decodes greedily with a KV cache and prefills a prompt in one batch (causal attention),
prints one JSON line with decode and prefill tokens/s.
Run with Debian's python3-torch: OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_decode.py MODEL.bin [N] [PROMPT]
TORCH_ATTN=sdpa: attention through torch.nn.functional.scaled_dot_product_attention (PyTorch >= 2.0),
the peer at its best available setting; the default (einsum) is what PyTorch 1.13 can run."""
import json, math, os, struct, sys, time
import numpy as np
import torch

path, n_tokens = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 64
n_prompt = int(sys.argv[3]) if len(sys.argv) > 3 else 64
torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))  # bench/busy_core.sh sets it
import os
SDPA = os.environ.get("TORCH_ATTN", "einsum") == "sdpa"
if SDPA and not hasattr(torch.nn.functional, "scaled_dot_product_attention"):
    sys.exit(f"TORCH_ATTN=sdpa needs PyTorch >= 2.0 (this is {torch.__version__})")
with open(path, "rb") as f:
    D, Fd, L, H, K, V, S = struct.unpack("7i", f.read(28))
    data = np.frombuffer(f.read(), dtype=np.float32)
shared, V, hd = V > 0, abs(V), D // H
off = 0
def take(*shape):
    global off
    n = int(np.prod(shape))
    t = torch.from_numpy(data[off:off + n].copy()).view(*shape)
    off += n
    return t
emb = take(V, D); an = take(L, D); wq = take(L, H * hd, D); wk = take(L, K * hd, D); wv = take(L, K * hd, D)
wo = take(L, D, H * hd); fn = take(L, D); w1 = take(L, Fd, D); w2 = take(L, D, Fd); w3 = take(L, Fd, D); nf = take(D)
off += S * hd
head = emb if shared else take(V, D)
inv = 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
kc = torch.zeros(L, S, K, hd); vc = torch.zeros(L, S, K, hd)

def rms(x, w): return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w
def rope(x, pos):  # interleaved pairs, as llama2.c
    a = pos * inv
    c, s = a.cos(), a.sin()
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], -1).flatten(-2)

@torch.no_grad()
def step(tok, pos):
    x = emb[tok]
    for l in range(L):
        h = rms(x, an[l])
        q = rope((wq[l] @ h).view(H, hd), pos); k = rope((wk[l] @ h).view(K, hd), pos); v = (wv[l] @ h).view(K, hd)
        kc[l, pos], vc[l, pos] = k, v
        kk = kc[l, :pos + 1].repeat_interleave(H // K, 1); vv = vc[l, :pos + 1].repeat_interleave(H // K, 1)
        if SDPA:
            o = torch.nn.functional.scaled_dot_product_attention(q[:, None], kk.transpose(0, 1), vv.transpose(0, 1)).reshape(-1)
        else:
            att = torch.einsum("hd,thd->ht", q, kk) / math.sqrt(hd)
            o = torch.einsum("ht,thd->hd", att.softmax(-1), vv).reshape(-1)
        x = x + wo[l] @ o
        h = rms(x, fn[l])
        x = x + w2[l] @ (torch.nn.functional.silu(w1[l] @ h) * (w3[l] @ h))
    return head @ rms(x, nf)

@torch.no_grad()
def prefill(toks):  # all prompt positions at once, causal; fills the cache
    T = len(toks)
    pos = torch.arange(T, dtype=torch.float32)[:, None]
    x = emb[torch.tensor(toks)]
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(L):
        h = rms(x, an[l])
        q = rope((h @ wq[l].T).view(T, H, hd), pos[:, None]); k = rope((h @ wk[l].T).view(T, K, hd), pos[:, None])
        v = (h @ wv[l].T).view(T, K, hd)
        kc[l, :T], vc[l, :T] = k, v
        kk = k.repeat_interleave(H // K, 1); vv = v.repeat_interleave(H // K, 1)
        if SDPA:
            o = torch.nn.functional.scaled_dot_product_attention(q.transpose(0, 1), kk.transpose(0, 1), vv.transpose(0, 1), is_causal=True)
            x = x + o.transpose(0, 1).reshape(T, -1) @ wo[l].T
        else:
            att = torch.einsum("qhd,khd->hqk", q, kk) / math.sqrt(hd) + mask
            x = x + torch.einsum("hqk,khd->qhd", att.softmax(-1), vv).reshape(T, -1) @ wo[l].T
        h = rms(x, fn[l])
        x = x + (torch.nn.functional.silu(h @ w1[l].T) * (h @ w3[l].T)) @ w2[l].T
    return rms(x[-1], nf) @ head.T

prompt = [1] + [(i * 7919) % V for i in range(1, n_prompt)]
# the batched prefill must give the logits of feeding the prompt one token at a time
batched = prefill(prompt)
for p_, t_ in enumerate(prompt):
    stepped = step(t_, p_)
check = float((batched - stepped).abs().max())
assert check < 1e-3, f"prefill logits differ from the per-token loop by {check}"
t0 = time.perf_counter()
prefill(prompt)
prefill_s = time.perf_counter() - t0
tok, pos = 1, 0
step(tok, 0); pos = 1  # warm
t0 = time.perf_counter()
for i in range(n_tokens):
    tok = int(step(tok, pos).argmax()); pos += 1
dt = time.perf_counter() - t0
print(json.dumps({"impl": "pytorch-" + torch.__version__, "attn": "sdpa" if SDPA else "einsum", "decode_tok_s": n_tokens / dt, "prefill_tok_s": n_prompt / prefill_s,
                  "prefill_vs_loop_max_abs_diff": check}))
