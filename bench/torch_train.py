#!/usr/bin/env python3
"""PyTorch peer for bench_train: the same Llama-style model (RMSNorm, RoPE rotate-half, GQA,
SwiGLU, untied head), random tokens, forward + backward + clip + AdamW per step. Prints one JSON
line like clm_bench_train. Run with Debian's python3-torch (/usr/bin/python3)."""
import argparse, json, math, resource, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(s, D, H, K, Fd):
        super().__init__()
        s.H, s.K, s.hd = H, K, D // H
        s.n1, s.n2 = nn.Parameter(torch.ones(D)), nn.Parameter(torch.ones(D))
        s.q, s.k, s.v = nn.Linear(D, H * s.hd, bias=False), nn.Linear(D, K * s.hd, bias=False), nn.Linear(D, K * s.hd, bias=False)
        s.o = nn.Linear(H * s.hd, D, bias=False)
        s.g, s.u, s.d = nn.Linear(D, Fd, bias=False), nn.Linear(D, Fd, bias=False), nn.Linear(Fd, D, bias=False)

    @staticmethod
    def rms(x, w): return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    sdpa = False  # --sdpa: F.scaled_dot_product_attention (fused / flash kernels on a GPU)

    def forward(s, x, cos, sin, mask):
        B, T, D = x.shape
        h = s.rms(x, s.n1)
        q = s.q(h).view(B, T, s.H, s.hd).transpose(1, 2)
        k = s.k(h).view(B, T, s.K, s.hd).transpose(1, 2)
        v = s.v(h).view(B, T, s.K, s.hd).transpose(1, 2)
        def rope(t):
            a, b = t[..., : s.hd // 2], t[..., s.hd // 2:]
            return torch.cat([a * cos - b * sin, a * sin + b * cos], -1)
        q, k = rope(q), rope(k)
        k = k.repeat_interleave(s.H // s.K, dim=1)
        v = v.repeat_interleave(s.H // s.K, dim=1)
        if Block.sdpa:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-1, -2)) / math.sqrt(s.hd)
            o = att.masked_fill(mask, float("-inf")).softmax(-1) @ v
        x = x + s.o(o.transpose(1, 2).reshape(B, T, D))
        h = s.rms(x, s.n2)
        return x + s.d(F.silu(s.g(h)) * s.u(h))


class LM(nn.Module):
    def __init__(s, V, D, L, H, K, Fd, T):
        super().__init__()
        s.emb = nn.Embedding(V, D)
        s.blocks = nn.ModuleList([Block(D, H, K, Fd) for _ in range(L)])
        s.nf = nn.Parameter(torch.ones(D))
        s.head = nn.Linear(D, V, bias=False)
        hd = D // H
        ang = torch.arange(T)[:, None] * (10000.0 ** (-2.0 * torch.arange(hd // 2) / hd))[None]
        s.register_buffer("cos", ang.cos()), s.register_buffer("sin", ang.sin())
        s.register_buffer("mask", torch.ones(T, T, dtype=torch.bool).triu(1))

    def forward(s, ids):
        x = s.emb(ids)
        for b in s.blocks: x = b(x, s.cos, s.sin, s.mask)
        return s.head(Block.rms(x, s.nf))


class Recurrent(nn.Module):
    """nn.LSTM, or the TSLM cell h_t = (x_t U + b1) * (h_{t-1} W + b2) looped over time in Python
    (PyTorch has no fused multiplicative cell); embedding = hidden = D, head with bias."""
    def __init__(s, arch, V, D, L):
        super().__init__()
        s.arch, s.emb, s.head = arch, nn.Embedding(V, D), nn.Linear(D, V)
        if arch == "lstm":
            s.rnn = nn.LSTM(D, D, num_layers=L, batch_first=True)
        else:
            s.U = nn.ModuleList([nn.Linear(D, D) for _ in range(L)])
            s.W = nn.ModuleList([nn.Linear(D, D) for _ in range(L)])

    def forward(s, ids):
        x = s.emb(ids)
        if s.arch == "lstm":
            x, _ = s.rnn(x)
        else:
            for U, W in zip(s.U, s.W):
                a, h, outs = U(x), torch.zeros(x.shape[0], x.shape[2]), []
                for t in range(x.shape[1]):
                    h = a[:, t] * W(h)
                    outs.append(h)
                x = torch.stack(outs, 1)
        return s.head(x)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="transformer")
    for k, v in dict(vocab=10000, d_model=256, n_layers=6, n_heads=8, n_kv_heads=4, d_ff=688, batch=8, seq=256,
                     warmup=2, steps=10, threads=2).items():
        p.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tf32", action="store_true", help="cuda: TF32 matmuls")
    p.add_argument("--sdpa", action="store_true", help="fused scaled_dot_product_attention")
    p.add_argument("--bf16", action="store_true", help="cuda: torch.autocast to bf16 (f32 master weights)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    a = p.parse_args()
    Block.sdpa = a.sdpa
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.arch == "transformer":
        m = LM(a.vocab, a.d_model, a.n_layers, a.n_heads, a.n_kv_heads, a.d_ff, a.seq)
    else:
        m = Recurrent(a.arch, a.vocab, a.d_model, a.n_layers)
    m = m.to(dev)
    fwd = torch.compile(m) if a.compile else m
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    times = []
    for s in range(a.warmup + a.steps):
        x = torch.randint(0, a.vocab, (a.batch, a.seq)).to(dev)
        y = torch.randint(0, a.vocab, (a.batch * a.seq,)).to(dev)
        sync()
        t0 = time.perf_counter()
        with torch.autocast(device_type=a.device, dtype=torch.bfloat16, enabled=a.bf16):
            logits = fwd(x)
        loss = F.cross_entropy(logits.float().view(-1, a.vocab), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        dt = time.perf_counter() - t0
        if s >= a.warmup: times.append(dt)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps(dict(impl="pytorch-" + torch.__version__, arch=a.arch, tokens_per_s=a.batch * a.seq / med, step_s_median=med,
                          step_s_min=times[0], step_s_max=times[-1],
                          peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                          params=sum(p.numel() for p in m.parameters()), threads=a.threads, loss=loss.item(),
                          device=torch.cuda.get_device_name() if a.device == "cuda" else "cpu", tf32=a.tf32, sdpa=a.sdpa, bf16=a.bf16, compile=a.compile,
                          gpu_mb_peak=torch.cuda.max_memory_allocated() / 2**20 if a.device == "cuda" else 0)))


if __name__ == "__main__":
    main()
