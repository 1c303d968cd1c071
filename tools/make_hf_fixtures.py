#!/usr/bin/env python3
"""Reference checkpoints for CompactLM's Hugging Face importer (run where transformers is installed,
e.g. the GPU machine: python3 tools/make_hf_fixtures.py OUTDIR).

For each family: a small random-initialised model from AutoModelForCausalLM.from_config (fixed
seed), saved with save_pretrained (safetensors; llama sharded into several files, the others in
bf16 to exercise conversion, the reference then reloaded from the saved file in float32), plus reference.safetensors with fixed token ids, the float32 logits
of the saved weights (eager attention), and 8 greedy tokens by full recomputation.
Norm weights and biases are randomised (from_config sets them to 1 and 0, which would hide a
missing bias add or a wrong norm weight in the importer or the inference path)."""
import json, os, struct, sys
import torch
from transformers import AutoConfig, AutoModelForCausalLM

COMMON = dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128, initializer_range=0.2, pad_token_id=0,
              bos_token_id=1, eos_token_id=2)
FAMILIES = {
    "llama": dict(tie_word_embeddings=False),
    "mistral": dict(tie_word_embeddings=False),
    "qwen2": dict(tie_word_embeddings=True),
    "phi3": dict(tie_word_embeddings=False),
    "gemma": dict(head_dim=32, tie_word_embeddings=True),
}


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    dt = {torch.float32: "F32", torch.int32: "I32"}
    for name, t in tensors.items():
        data = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": dt[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main(out):
    for fam, extra in FAMILIES.items():
        torch.manual_seed(0)
        cfg = AutoConfig.for_model(fam, **COMMON, **extra)
        cfg._attn_implementation = "eager"
        model = AutoModelForCausalLM.from_config(cfg).eval()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("norm.weight") or name.endswith(".bias"):
                    p.add_(0.3 * torch.randn_like(p))
        d = os.path.join(out, fam)
        if fam == "llama":
            model.save_pretrained(d, safe_serialization=True, max_shard_size="100KB")
        else:
            # Save in bf16, then reload the saved file in float32 the way a user would (buffers such
            # as RoPE's inv_freq are recomputed in float32, not round-tripped through bf16).
            model.to(torch.bfloat16).save_pretrained(d, safe_serialization=True)
            model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
        g = torch.Generator().manual_seed(1)
        ids = torch.randint(3, 256, (1, 12), generator=g)
        with torch.no_grad():
            logits = model(ids).logits[0].float()
            seq = ids.clone()
            greedy = []
            for _ in range(8):
                nxt = model(seq).logits[0, -1].argmax().item()
                greedy.append(nxt)
                seq = torch.cat([seq, torch.tensor([[nxt]])], 1)
        write_safetensors(os.path.join(d, "reference.safetensors"),
                          {"ids": ids[0].int(), "logits": logits, "greedy": torch.tensor(greedy, dtype=torch.int32)})
        print(fam, "saved", sorted(os.listdir(d)), "greedy", greedy)


if __name__ == "__main__":
    main(sys.argv[1])
