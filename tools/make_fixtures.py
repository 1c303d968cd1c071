#!/usr/bin/env python3
"""Reference fixtures for CompactLM's PyTorch parity tests.

Builds tiny decoder-only transformers in plain PyTorch (the same math CompactLM implements), then
writes, per model, one safetensors file with: the weights (Hugging Face Llama names), a batch of
token ids and targets, logits, loss and every parameter's gradient (in float32 and, from the same
weights cast to float64, in float64), and the losses of the first 10 AdamW steps with warmup +
cosine and global-norm clipping.

Run with Debian's python3-torch:  /usr/bin/python3 tools/make_fixtures.py tests/fixtures
"""
import json
import math
import struct
import sys

import torch
import torch.nn.functional as F

CONFIGS = {
    "llama_tiny": dict(vocab_size=37, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=24, max_seq_len=8,
                       attention="causal", position="rope", mlp="swiglu", norm="rmsnorm", embedding="standard",
                       norm_eps=1e-5, rope_theta=10000.0, rope_interleaved=False, tie_embeddings=False,
                       attn_bias=False, mlp_bias=False, init_std=0.02, arch="transformer"),
    "gpt_tiny": dict(vocab_size=29, d_model=16, n_layers=2, n_heads=2, n_kv_heads=2, d_ff=32, max_seq_len=8,
                     attention="causal", position="learned", mlp="gelu", norm="layernorm", embedding="standard",
                     norm_eps=1e-5, rope_theta=10000.0, rope_interleaved=False, tie_embeddings=True,
                     attn_bias=True, mlp_bias=True, init_std=0.02, arch="transformer"),
}
LLAMA = CONFIGS["llama_tiny"]
# The method variants on the llama_tiny shape: each slot's PyTorch definition is written below from
# the papers' formulas (docs/METHODS.md), independently of the C++.
CONFIGS.update({
    "tensorcoder_tiny": dict(LLAMA, attention="tensorcoder"),
    "tensorcoder_cols_tiny": dict(LLAMA, attention="tensorcoder", attention_opt=dict(f="softmax_cols", scale="sqrt_n")),
    "multilinear_tiny": dict(LLAMA, attention="multilinear", attention_opt=dict(rank=8)),
    "multilinear_split_tiny": dict(LLAMA, attention="multilinear", attention_opt=dict(rank=8, mode="split_concat")),
    "rpe3d_tiny": dict(LLAMA, position="3d-rpe", position_opt=dict(chunk=3, phi=0.7, scale=1.5)),
    "yarn_tiny": dict(LLAMA, position_opt=dict(scaling="yarn", scale=4.0, orig_len=6, yarn_alpha=0.2, yarn_beta=1.0)),
    "alibi_tiny": dict(LLAMA, position="alibi", n_heads=4, n_kv_heads=4),
    # compact embeddings, tied to the output projection (the table is built, then both read it)
    "see_tiny": dict(LLAMA, embedding="see", embedding_opt=dict(order=3, rank=2, rows=6), tie_embeddings=True),
    "see2_tiny": dict(LLAMA, embedding="see", embedding_opt=dict(order=2, rank=3, rows=5), tie_embeddings=True),
    "see_gain_tiny": dict(LLAMA, embedding="see", embedding_opt=dict(order=3, rank=2, rows=6, word_gain=1), tie_embeddings=True),
    "factorized_tiny": dict(LLAMA, embedding="factorized", embedding_opt=dict(k=5), tie_embeddings=True),
    "hashed_tiny": dict(LLAMA, embedding="hashed", embedding_opt=dict(buckets=7, hashes=2), tie_embeddings=True),
})
CONFIGS.update({  # recurrent models: hidden = d_model; the LSTM reference is torch.nn.LSTM itself
    "tslm_tiny": dict(LLAMA, arch="tslm", n_layers=2, tie_embeddings=False),
    "lstm_tiny": dict(LLAMA, arch="lstm", n_layers=2, tie_embeddings=True, d_model=32, n_heads=4, n_kv_heads=2),
})
CONFIGS.update({  # a vision slot: 4x4 images, 2x2 patches -> 4 vectors spliced over the placeholder id 1
    "vision_tiny": dict(LLAMA, vision="patch", vision_opt=dict(image=4, patch=2, channels=3, token=1, hidden=12)),
})
IMAGES = None  # [B, image, image, channels] of the current vision fixture
BUFFERS = (".units", ".bucket_ids")  # integer ids stored as floats: saved, never trained
B, T = 2, 8
OPT = dict(lr=1e-2, warmup=3, steps=10, min_lr_ratio=0.1, clip=1.0, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)


def make_params(c, g):
    D, H, K, hd, Fd, V = c["d_model"], c["n_heads"], c["n_kv_heads"], c["d_model"] // c["n_heads"], c["d_ff"], c["vocab_size"]
    p = {}
    def w(*shape, std=0.1): return torch.randn(*shape, generator=g) * std
    if c["arch"] in ("tslm", "lstm"):
        G = 4 * D if c["arch"] == "lstm" else D
        p["model.embed_tokens.weight"] = w(V, D, std=0.5)
        for l in range(c["n_layers"]):
            pre = f"model.layers.{l}"
            sd = 0.4 if c["arch"] == "lstm" else 0.3  # TSLM multiplies: larger weights blow up over T
            p[pre + ".in_proj.weight"] = w(G, D, std=sd)
            p[pre + ".in_proj.bias"] = w(G, std=0.2)
            p[pre + ".rec_proj.weight"] = w(G, D, std=sd)
            p[pre + ".rec_proj.bias"] = (1.0 if c["arch"] == "tslm" else 0.0) + w(G, std=0.2)
        if not c["tie_embeddings"]: p["lm_head.weight"] = w(V, D, std=0.3)
        p["lm_head.bias"] = w(V, std=0.2)
        return p
    def norm(name):
        p[name + ".weight"] = 1.0 + w(D)
        if c["norm"] == "layernorm": p[name + ".bias"] = w(D)
    e, eo = c["embedding"], c.get("embedding_opt", {})
    if e == "see":
        n, r, U = eo["order"], eo["rank"], eo["rows"]
        q = 1
        while q ** n < D: q += 1
        p["model.embed_tokens.factors"] = w(r, U, q, std=0.8)
        p["model.embed_tokens.norm.weight"] = 1.0 + w(D)
        p["model.embed_tokens.norm.bias"] = w(D)
        p["model.embed_tokens.units"] = torch.randint(0, U, (V, n), generator=g).double()  # 0 = PAD
        if eo.get("word_gain"): p["model.embed_tokens.word_gain"] = 1.0 + w(V, 1, std=0.5)
    elif e == "factorized":
        p["model.embed_tokens.weight"] = w(V, eo["k"], std=0.5)
        p["model.embed_tokens.proj.weight"] = w(D, eo["k"], std=0.5)
    elif e == "hashed":
        p["model.embed_tokens.buckets"] = w(eo["buckets"], D, std=0.5)
        p["model.embed_tokens.importance"] = 1.0 + w(V, eo["hashes"], std=0.3)
        p["model.embed_tokens.bucket_ids"] = torch.randint(0, eo["buckets"], (V, eo["hashes"]), generator=g).double()
    else:
        p["model.embed_tokens.weight"] = w(V, D, std=0.5)
    if c["position"] == "learned": p["model.embed_positions.weight"] = w(c["max_seq_len"], D, std=0.5)
    if c.get("vision", "none") == "patch":
        vo = c["vision_opt"]
        pdim, P = vo["patch"] ** 2 * vo["channels"], (vo["image"] // vo["patch"]) ** 2
        p["model.vision.proj1.weight"] = w(vo["hidden"], pdim, std=0.5)
        p["model.vision.proj1.bias"] = w(vo["hidden"])
        p["model.vision.proj2.weight"] = w(D, vo["hidden"], std=0.5)
        p["model.vision.proj2.bias"] = w(D)
        p["model.vision.pos"] = w(P, D, std=0.5)
    for l in range(c["n_layers"]):
        pre = f"model.layers.{l}"
        norm(pre + ".input_layernorm")
        if c["attention"] == "multilinear":
            R = c["attention_opt"].get("rank", hd)
            for n in ("q", "k", "v"): p[f"{pre}.self_attn.{n}_proj.weight"] = w(R, D, std=0.3)
            split = c["attention_opt"].get("mode") == "split_concat"
            p[f"{pre}.self_attn.o_proj.weight"] = w(D, c["max_seq_len"] ** 2 if split else R, std=0.3)
            p[f"{pre}.self_attn.core"] = 1.0 + w(H, R, std=0.5)
        else:
            for n, out in (("q", H * hd), ("k", K * hd), ("v", K * hd)):
                p[f"{pre}.self_attn.{n}_proj.weight"] = w(out, D, std=0.3)
                if c["attn_bias"]: p[f"{pre}.self_attn.{n}_proj.bias"] = w(out)
            p[f"{pre}.self_attn.o_proj.weight"] = w(D, H * hd, std=0.3)
        if c["attention"] == "tensorcoder": p[f"{pre}.self_attn.dim_weight"] = 1.0 + w(H, hd, hd, std=0.5)
        norm(pre + ".post_attention_layernorm")
        names = ("gate", "up", "down") if c["mlp"] == "swiglu" else ("up", "down")
        for n in names:
            shape = (D, Fd) if n == "down" else (Fd, D)
            p[f"{pre}.mlp.{n}_proj.weight"] = w(*shape, std=0.3)
            if c["mlp_bias"]: p[f"{pre}.mlp.{n}_proj.bias"] = w(shape[0])
    norm("model.norm")
    if not c["tie_embeddings"]: p["lm_head.weight"] = w(V, D, std=0.3)
    return p


def embed_table(c, p):  # the [V, D] token table, as both the input embedding and a tied head read it
    D, e = c["d_model"], c["embedding"]
    if e == "see":  # LayerNorm(trunc_D(sum_k f_k[u1] (x) ... (x) f_k[un])), row-major flattening
        f, u = p["model.embed_tokens.factors"], p["model.embed_tokens.units"].long()
        r, V = f.shape[0], u.shape[0]
        t = f[:, u[:, 0], :]
        for j in range(1, u.shape[1]):
            t = (t[:, :, :, None] * f[:, u[:, j], :][:, :, None, :]).reshape(r, V, -1)
        rows = F.layer_norm(t.sum(0)[:, :D], (D,), p["model.embed_tokens.norm.weight"], p["model.embed_tokens.norm.bias"], 1e-5)
        return rows * p["model.embed_tokens.word_gain"] if "model.embed_tokens.word_gain" in p else rows
    if e == "factorized":
        return p["model.embed_tokens.weight"] @ p["model.embed_tokens.proj.weight"].t()
    if e == "hashed":
        idx = p["model.embed_tokens.bucket_ids"].long()
        return (p["model.embed_tokens.importance"][:, :, None] * p["model.embed_tokens.buckets"][idx]).sum(1)
    return p["model.embed_tokens.weight"]


def recurrent_forward(c, p, ids):
    D, (Bn, Tn) = c["d_model"], ids.shape
    x = embed_table(c, p)[ids]  # [B, T, D]
    for l in range(c["n_layers"]):
        pre = f"model.layers.{l}"
        Wi, bi, Wh, bh = (p[pre + n] for n in (".in_proj.weight", ".in_proj.bias", ".rec_proj.weight", ".rec_proj.bias"))
        if c["arch"] == "lstm":
            cell = torch.nn.LSTM(D, D, batch_first=True).to(x.dtype)
            # the fixture's tensors are the module's parameters (so their .grad is PyTorch's)
            for name, t in (("weight_ih_l0", Wi), ("bias_ih_l0", bi), ("weight_hh_l0", Wh), ("bias_hh_l0", bh)):
                delattr(cell, name)
                setattr(cell, name, t)
            cell._flat_weights = [Wi, Wh, bi, bh]
            x, _ = cell(x)
        else:  # TSLM: h_t = (x_t U^T + b1) * (h_{t-1} W^T + b2), h_0 = 0
            a = x @ Wi.t() + bi
            h, outs = torch.zeros(Bn, D, dtype=x.dtype), []
            for t in range(Tn):
                h = a[:, t] * (h @ Wh.t() + bh)
                outs.append(h)
            x = torch.stack(outs, 1)
    head = embed_table(c, p) if c["tie_embeddings"] else p["lm_head.weight"]
    return (x @ head.t() + p["lm_head.bias"]).reshape(Bn * Tn, -1)


def forward(c, p, ids):
    if c["arch"] in ("tslm", "lstm"): return recurrent_forward(c, p, ids)
    D, H, K = c["d_model"], c["n_heads"], c["n_kv_heads"]
    hd, Bn, Tn = D // H, ids.shape[0], ids.shape[1]
    def lin(x, name):
        y = x @ p[name + ".weight"].t()
        b = p.get(name + ".bias")
        return y + b if b is not None else y
    def norm(x, name):
        if c["norm"] == "rmsnorm":
            return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + c["norm_eps"]) * p[name + ".weight"]
        return F.layer_norm(x, (D,), p[name + ".weight"], p[name + ".bias"], c["norm_eps"])
    po = c.get("position_opt", {})
    def angles():  # [T, hd/2] rotation angle of each pair at each position, and a magnitude
        half = hd // 2
        inv = c["rope_theta"] ** (-2.0 * torch.arange(half, dtype=torch.float64) / hd)
        p = torch.arange(Tn, dtype=torch.float64)
        if c["position"] == "3d-rpe":  # offset rotation inside a chunk, minus a phase per chunk
            x = p / po.get("scale", 1.0)
            j = torch.floor(x / po["chunk"])
            return (x - j * po["chunk"])[:, None] * inv[None, :] - (j * po["phi"])[:, None], 1.0
        if po.get("scaling") == "yarn":  # ramp by the number of turns over the original length
            s, L = po["scale"], po["orig_len"]
            turns = L * inv / (2 * math.pi)
            g = ((turns - po["yarn_alpha"]) / (po["yarn_beta"] - po["yarn_alpha"])).clamp(0, 1)
            inv = (1 - g) * inv / s + g * inv
            return p[:, None] * inv[None, :], 0.1 * math.log(s) + 1.0
        return p[:, None] * inv[None, :], 1.0
    def rope(x):  # x [B, T, h, hd], rotate-half pairs (i, i + hd/2)
        half = hd // 2
        ang, m = angles()
        cos, sin = (m * ang.cos()).to(x.dtype)[None, :, None, :], (m * ang.sin()).to(x.dtype)[None, :, None, :]
        a, b = x[..., :half], x[..., half:]
        return torch.cat([a * cos - b * sin, a * sin + b * cos], -1)
    def alibi(h):  # [h, T, T] bias -m_h (i - j), slopes 2^(-8 (h+1) / n) for n a power of two
        m = torch.tensor([2.0 ** (-8.0 * (i + 1) / h) for i in range(h)], dtype=torch.float64)
        d = torch.arange(Tn)[:, None] - torch.arange(Tn)[None, :]
        return -(m[:, None, None] * d[None].double())
    rotary = c["position"] in ("rope", "3d-rpe")
    table = embed_table(c, p)
    x = table[ids]
    if c.get("vision", "none") == "patch":  # patches (row-major, pixels (y, x, channel)) -> MLP -> placeholder rows
        vo = c["vision_opt"]
        S, P, ch, g = vo["image"], vo["patch"], vo["channels"], vo["image"] // vo["patch"]
        img = IMAGES.to(x.dtype)
        patches = img.reshape(-1, g, P, g, P, ch).permute(0, 1, 3, 2, 4, 5).reshape(-1, P * P * ch)
        v = lin(F.gelu(lin(patches, "model.vision.proj1")), "model.vision.proj2") + p["model.vision.pos"].repeat(img.shape[0], 1)
        x = x.clone()
        x[ids == vo["token"]] = v  # one image per row: its placeholders, in order
    if c["position"] == "learned": x = x + p["model.embed_positions.weight"][:Tn][None]
    mask = torch.ones(Tn, Tn, dtype=torch.bool).tril()
    for l in range(c["n_layers"]):
        pre = f"model.layers.{l}"
        h = norm(x, pre + ".input_layernorm")
        if c["attention"] == "multilinear":  # blocks share Q/K/V, differ by a diagonal core
            Q, Kx, V = (lin(h, pre + f".self_attn.{n}_proj") for n in "qkv")
            R = Q.shape[-1]
            g = p[pre + ".self_attn.core"]
            if c["attention_opt"].get("mode") == "split_concat":  # the paper's form: non-causal, fixed N
                if rotary: Q, Kx = rope(Q.view(Bn, Tn, R // hd, hd)).reshape(Bn, Tn, R), rope(Kx.view(Bn, Tn, R // hd, hd)).reshape(Bn, Tn, R)
                Tt = torch.einsum("r,bar,bir,bjr->baij", g.mean(0), Q, Kx, V).reshape(Bn, Tn, Tn * Tn)
                x = x + lin(Tt, pre + ".self_attn.o_proj")
                h = norm(x, pre + ".post_attention_layernorm")
                m = F.silu(lin(h, pre + ".mlp.gate_proj")) * lin(h, pre + ".mlp.up_proj")
                x = x + lin(m, pre + ".mlp.down_proj")
                continue
            outs = []
            for j in range(H):
                qj = Q * g[j]
                if rotary: qj, kj = rope(qj.view(Bn, Tn, R // hd, hd)).reshape(Bn, Tn, R), rope(Kx.view(Bn, Tn, R // hd, hd)).reshape(Bn, Tn, R)
                else: kj = Kx
                s = torch.einsum("btr,bsr->bts", qj, kj) / math.sqrt(R)
                if c["position"] == "alibi": s = s + alibi(H)[j].to(s.dtype)
                s = s.masked_fill(~mask, float("-inf")).softmax(-1)
                outs.append(torch.einsum("bts,bsr->btr", s, V))
            o = sum(outs) / H
            x = x + lin(o, pre + ".self_attn.o_proj")
            h = norm(x, pre + ".post_attention_layernorm")
            m = F.silu(lin(h, pre + ".mlp.gate_proj")) * lin(h, pre + ".mlp.up_proj")
            x = x + lin(m, pre + ".mlp.down_proj")
            continue
        q = lin(h, pre + ".self_attn.q_proj").view(Bn, Tn, H, hd)
        k = lin(h, pre + ".self_attn.k_proj").view(Bn, Tn, K, hd)
        v = lin(h, pre + ".self_attn.v_proj").view(Bn, Tn, K, hd)
        if rotary: q, k = rope(q), rope(k)
        k = k.repeat_interleave(H // K, dim=2)
        v = v.repeat_interleave(H // K, dim=2)
        if c["attention"] == "tensorcoder":  # d x d maps of running sums, O = (W . S) v
            ao = c.get("attention_opt", {})
            P = torch.einsum("bthi,bthj->bthij", q, k).cumsum(1)
            n = torch.arange(1, Tn + 1, dtype=q.dtype)[None, :, None, None, None]
            Z = P / (n.sqrt() if ao.get("scale") == "sqrt_n" else math.sqrt(hd))
            S = Z.softmax(-2 if ao.get("f") == "softmax_cols" else -1)
            Wd = p[pre + ".self_attn.dim_weight"]
            o = torch.einsum("hij,bthij,bthj->bthi", Wd, S, v).reshape(Bn, Tn, H * hd)
        else:
            s = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(hd)
            if c["position"] == "alibi": s = s + alibi(H)[None].to(s.dtype)
            s = s.masked_fill(~mask, float("-inf")).softmax(-1)
            o = torch.einsum("bhts,bshd->bthd", s, v).reshape(Bn, Tn, H * hd)
        x = x + lin(o, pre + ".self_attn.o_proj")
        h = norm(x, pre + ".post_attention_layernorm")
        if c["mlp"] == "swiglu":
            m = F.silu(lin(h, pre + ".mlp.gate_proj")) * lin(h, pre + ".mlp.up_proj")
        else:
            m = F.gelu(lin(h, pre + ".mlp.up_proj"), approximate="tanh" if c["mlp"] == "gelu_tanh" else "none")
        x = x + lin(m, pre + ".mlp.down_proj")
    x = norm(x, "model.norm")
    head = table if c["tie_embeddings"] else p["lm_head.weight"]
    return (x @ head.t()).reshape(Bn * Tn, -1)


def lr_at(step):
    o = OPT
    if step < o["warmup"]: return o["lr"] * (step + 1) / o["warmup"]
    prog = min(1.0, (step - o["warmup"]) / (o["steps"] - o["warmup"]))
    return o["lr"] * (o["min_lr_ratio"] + (1 - o["min_lr_ratio"]) * 0.5 * (1 + math.cos(math.pi * prog)))


def write_safetensors(path, tensors, metadata):
    header, blobs, off = {"__metadata__": metadata}, [], 0
    dt = {torch.float32: "F32", torch.float64: "F64", torch.int32: "I32"}
    for name, t in tensors.items():
        t = t.detach().contiguous()
        data = t.numpy().tobytes()
        header[name] = {"dtype": dt[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main(outdir, only=None):
    torch.manual_seed(0)
    for name, c in CONFIGS.items():
        if only and name not in only: continue
        g = torch.Generator().manual_seed(1234)
        params = make_params(c, g)
        ids = torch.randint(0, c["vocab_size"], (B, T), generator=g)
        targets = torch.randint(0, c["vocab_size"], (B * T,), generator=g)
        global IMAGES
        IMAGES = None
        if c.get("vision", "none") == "patch":  # each row: the image's placeholders first, then text without the placeholder id
            vo = c["vision_opt"]
            ids = torch.randint(2, c["vocab_size"], (B, T), generator=g)
            ids[:, : (vo["image"] // vo["patch"]) ** 2] = vo["token"]
            IMAGES = torch.rand(B, vo["image"], vo["image"], vo["channels"], generator=g).double()  # f32 values, exact in f64
        out = {k: v.clone() for k, v in params.items()}
        if IMAGES is not None: out["images"] = IMAGES.float()
        out["ids"], out["targets"] = ids.reshape(-1).int(), targets.int()
        for dtype, tag in ((torch.float32, "f32"), (torch.float64, "f64")):
            p = {k: v.detach().clone().to(dtype).requires_grad_(not k.endswith(BUFFERS)) for k, v in params.items()}
            logits = forward(c, p, ids)
            loss = F.cross_entropy(logits, targets)
            loss.backward()
            out[f"{tag}.logits"] = logits.detach()
            out[f"{tag}.loss"] = loss.detach().reshape(1)
            for k, v in p.items():
                if not k.endswith(BUFFERS): out[f"{tag}.grad.{k}"] = v.grad
        # 10 AdamW steps in float32 on the same batch.
        p = {k: v.detach().clone().requires_grad_(not k.endswith(BUFFERS)) for k, v in params.items()}
        trained = {k: v for k, v in p.items() if not k.endswith(BUFFERS)}
        nd = lambda k: k.endswith("norm.weight") or k.endswith(".bias") or k.endswith(".dim_weight") or k.endswith(".core") or k.endswith(".word_gain")
        decay = [v for k, v in trained.items() if not nd(k)]
        no_decay = [v for k, v in trained.items() if nd(k)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": OPT["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=OPT["lr"], betas=(OPT["beta1"], OPT["beta2"]), eps=OPT["eps"])
        losses = []
        for step in range(OPT["steps"]):
            for gr in opt.param_groups: gr["lr"] = lr_at(step)
            opt.zero_grad()
            loss = F.cross_entropy(forward(c, p, ids), targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(trained.values()), OPT["clip"])
            opt.step()
            losses.append(loss.item())
        out["adamw.losses"] = torch.tensor(losses, dtype=torch.float64)
        for k, v in p.items(): out[f"adamw.final.{k}"] = v.detach()
        meta = {"config": json.dumps(c), "opt": json.dumps(OPT), "B": str(B), "T": str(T), "torch": torch.__version__}
        path = f"{outdir}/{name}.safetensors"
        write_safetensors(path, out, meta)
        print(f"wrote {path}: loss f32 {out['f32.loss'].item():.6f}, adamw losses {losses[0]:.4f} -> {losses[-1]:.4f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures", sys.argv[2:])
