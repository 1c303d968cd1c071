#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (fuzz/corpus/<target>/seed_*) from the test fixtures: small valid
files of every format. Deterministic; standard library only. Run from anywhere:
    python3 fuzz/make_corpus.py
Crash regressions (fuzz/corpus/<target>/crash_*) are kept; only seed_* files are rewritten."""
import json, os, struct, glob

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data)


# ---- safetensors: the smallest tensors of real fixtures, re-serialized (f32, bf16, metadata)
def read_st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    return h, b[8 + n:]


def write_st(tensors, meta=None):
    h, data = {}, b""
    if meta:
        h["__metadata__"] = meta
    for name, (dt, shape, raw) in tensors:
        h[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    hs = json.dumps(h, separators=(",", ":")).encode()
    hs += b" " * ((8 - (8 + len(hs)) % 8) % 8)
    return struct.pack("<Q", len(hs)) + hs + data


def smallest(path, k):
    h, data = read_st(path)
    items = [(n, e) for n, e in h.items() if n != "__metadata__"]
    items.sort(key=lambda x: (x[1]["data_offsets"][1] - x[1]["data_offsets"][0], x[0]))
    return [(n, (e["dtype"], e["shape"], data[e["data_offsets"][0]:e["data_offsets"][1]])) for n, e in items[:k]]


put("safetensors", "llama_tiny_f32", write_st(smallest(os.path.join(FIX, "llama_tiny.safetensors"), 3)))
put("safetensors", "gemma_bf16", write_st(smallest(os.path.join(FIX, "hf/gemma/model.safetensors"), 2), {"format": "pt"}))
put("safetensors", "empty", write_st([]))
put("safetensors", "dtypes", write_st([("a", ("F16", [2], b"\x00\x3c\x00\xc0")), ("b", ("I32", [1, 1], b"\x07\x00\x00\x00")),
                                       ("c", ("F64", [], struct.pack("<d", 1.5))), ("z", ("F32", [0, 3], b""))]))

# ---- config.json: the Hugging Face fixtures' configs, and CompactLM's own form
for cfg in sorted(glob.glob(os.path.join(FIX, "hf", "*", "config.json"))):
    put("config", "hf_" + os.path.basename(os.path.dirname(cfg)), open(cfg, "rb").read())
llama = json.load(open(os.path.join(FIX, "hf", "llama", "config.json")))
own = {"arch": "transformer", "vocab_size": llama["vocab_size"], "d_model": llama["hidden_size"],
       "n_layers": llama["num_hidden_layers"], "n_heads": llama["num_attention_heads"],
       "n_kv_heads": llama["num_key_value_heads"], "d_ff": llama["intermediate_size"], "head_dim": 0,
       "max_seq_len": llama["max_position_embeddings"], "attention": "causal", "position": "rope", "mlp": "swiglu",
       "norm": "rmsnorm", "embedding": "standard", "norm_eps": llama["rms_norm_eps"], "rope_theta": 10000.0,
       "rope_interleaved": False, "tie_embeddings": False, "attn_bias": False, "mlp_bias": False, "init_std": 0.02,
       "embed_scale": 1.0}
put("config", "own_llama", json.dumps(own, indent=1))
put("config", "own_gpt", json.dumps({"vocab_size": 257, "d_model": 32, "n_heads": 2, "n_kv_heads": 2, "position": "learned",
                                     "mlp": "gelu", "norm": "layernorm", "attn_bias": True, "mlp_bias": True,
                                     "attention_opt": {"window": 16}, "norm_opt": {}}))

# ---- tokenizers: tiny BPEs learned from the BPE fixture's reference texts
texts = json.load(open(os.path.join(FIX, "bpe_reference.json")))["texts"][:12]


def byte_map():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    m, n = {}, 0
    for b in range(256):
        if b in keep:
            m[b] = chr(b)
        else:
            m[b] = chr(256 + n)
            n += 1
    return m


def learn(words, n_merges):
    """words: lists of symbols; returns merges (pairs) in order."""
    words = [list(w) for w in words if w]
    merges = []
    for _ in range(n_merges):
        counts = {}
        for w in words:
            for a, b in zip(w, w[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + 1
        if not counts:
            break
        best = max(sorted(counts), key=lambda p: counts[p])
        merges.append(best)
        for w in words:
            i = 0
            while i + 1 < len(w):
                if (w[i], w[i + 1]) == best:
                    w[i:i + 2] = [w[i] + w[i + 1]]
                i += 1
    return merges


bm = byte_map()
words = []
for t in texts:
    for i, w in enumerate(t.split(" ")):
        words.append("".join(bm[b] for b in ((" " if i else "") + w).encode()))
merges = learn(words, 40)
vocab = {bm[b]: i for i, b in enumerate(range(256))}
for a, b in merges:
    vocab.setdefault(a + b, len(vocab))
vocab["<|endoftext|>"] = len(vocab)
gpt2_pat = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
bytelevel = {"version": "1.0",
             "added_tokens": [{"id": vocab["<|endoftext|>"], "content": "<|endoftext|>", "special": True}],
             "normalizer": {"type": "NFC"},
             "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                 {"type": "Split", "pattern": {"Regex": gpt2_pat}, "behavior": "Isolated", "invert": False},
                 {"type": "ByteLevel", "add_prefix_space": False}]},
             "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                                                                         {"Sequence": {"id": "A", "type_id": 0}}]},
             "model": {"type": "BPE", "vocab": vocab, "merges": [[a, b] for a, b in merges], "ignore_merges": False}}
put("tokenizer_json", "bytelevel", json.dumps(bytelevel, ensure_ascii=False))
put("gpt2", "gpt2", json.dumps(vocab, ensure_ascii=False).encode() + b"\0" +
    ("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)).encode())

SP = "\u2581"
sp_words = [SP + w for t in texts[:8] for w in t.split() if w]
sp_merges = learn(sp_words, 30)
sp_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
for b in range(256):
    sp_vocab[f"<0x{b:02X}>"] = len(sp_vocab)
for ch in sorted(set("".join(sp_words))):
    sp_vocab.setdefault(ch, len(sp_vocab))
for a, b in sp_merges:
    sp_vocab.setdefault(a + b, len(sp_vocab))
sp_added = [{"id": i, "content": c, "special": True} for c, i in (("<unk>", 0), ("<s>", 1), ("</s>", 2))]
sp_model = {"type": "BPE", "vocab": sp_vocab, "merges": [f"{a} {b}" for a, b in sp_merges], "byte_fallback": True}
put("tokenizer_json", "metaspace", json.dumps({"added_tokens": sp_added, "normalizer": None,
                                               "pre_tokenizer": {"type": "Metaspace", "replacement": SP, "prepend_scheme": "first", "split": False},
                                               "model": sp_model}, ensure_ascii=False))
put("tokenizer_json", "prepend_replace", json.dumps({"added_tokens": sp_added, "normalizer": {"type": "Sequence", "normalizers": [
    {"type": "Prepend", "prepend": SP}, {"type": "Replace", "pattern": {"String": " "}, "content": SP}]},
    "pre_tokenizer": None, "model": sp_model}, ensure_ascii=False))

# llama2.c's layout: <unk>, <s>, </s>, the 256 byte pieces, then merged pieces scored by rank
l2_pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [f"<0x{b:02X}>".encode() for b in range(256)]
l2_scores = [0.0] * len(l2_pieces)
for a, b in sp_merges[:20]:
    for p in (a, b, a + b):
        if p.replace(SP, " ").encode() not in l2_pieces:
            l2_pieces.append(p.replace(SP, " ").encode())
            l2_scores.append(-float(len(l2_pieces)))
put("tokenizer_json", "llama2c", json.dumps({"type": "llama2c", "max_token_length": max(len(p) for p in l2_pieces),
                                             "scores": l2_scores, "pieces_hex": [p.hex() for p in l2_pieces]}))
put("tokenizer_json", "word", json.dumps({"type": "word", "vocab": ["<eos>", "<unk>"] + sorted(set(texts[1].split()))}))
put("tokenizer_json", "byte", json.dumps({"type": "byte"}))
max_len = max(len(p) for p in l2_pieces)
put("llama2c_tokenizer", "tok", struct.pack("<i", max_len) +
    b"".join(struct.pack("<fi", s, len(p)) + p for p, s in zip(l2_pieces, l2_scores)))

# ---- llama2.c checkpoint: a tiny model (dim 8, hidden 16, 1 layer, 2 heads, 1 kv head, vocab 16, seq 4)
def l2c_model(D, Fd, L, H, K, V, S, shared):
    hd = D // H
    per_layer = D + D * D + 2 * D * K * hd + D * D + D + 3 * D * Fd
    n = V * D + L * per_layer + D + S * hd + (0 if shared else V * D)
    return struct.pack("<7i", D, Fd, L, H, K, V if shared else -V, S) + b"".join(struct.pack("<f", ((i * 37) % 17 - 8) / 16) for i in range(n))


put("llama2c_bin", "tied", l2c_model(8, 16, 1, 2, 1, 16, 4, True))
put("llama2c_bin", "untied", l2c_model(8, 12, 2, 2, 2, 8, 2, False))

# ---- GGUF v3: metadata of every value type and three tiny tensors (f32, f16, bf16)
def gstr(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(s)) + s


def gguf():
    kv = [("general.architecture", 8, gstr("llama")), ("general.alignment", 4, struct.pack("<I", 32)),
          ("llama.rope.freq_base", 6, struct.pack("<f", 10000.0)), ("tokenizer.ggml.add_bos_token", 7, b"\x01"),
          ("a.u8", 0, b"\x05"), ("a.i8", 1, b"\xfb"), ("a.u16", 2, b"\x05\x00"), ("a.i16", 3, b"\xfb\xff"), ("a.i32", 5, struct.pack("<i", -5)),
          ("a.u64", 10, struct.pack("<Q", 5)), ("a.i64", 11, struct.pack("<q", -5)), ("a.f64", 12, struct.pack("<d", 0.5)),
          ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 3) + gstr("<unk>") + gstr("\u2581a") + gstr("b")),
          ("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 2) + struct.pack("<2f", 0.0, -1.0)),
          ("a.nested", 9, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 4, 2) + struct.pack("<2I", 1, 2))]
    tensors = [("output_norm.weight", [4], 0, struct.pack("<4f", 1, 2, 3, 4)),
               ("blk.0.attn_q.weight", [2, 2], 1, struct.pack("<4e", 1, -1, 0.5, 2)),
               ("token_embd.weight", [2, 3], 30, b"\x80\x3f" * 6)]
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for k, t, v in kv:
        out += gstr(k) + struct.pack("<I", t) + v
    off, data = 0, b""
    for name, ne, ty, raw in tensors:
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne) + struct.pack("<IQ", ty, off)
        pad = raw + b"\0" * ((32 - len(raw) % 32) % 32)
        data += pad
        off += len(pad)
    out += b"\0" * ((32 - len(out) % 32) % 32)
    return out + data


put("gguf", "tiny", gguf())
put("gguf", "empty", b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
