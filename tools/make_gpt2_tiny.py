#!/usr/bin/env python3
"""GPT-2's tokenizer cut to its first M merges, in GPT-2's own file format (encoder.json +
vocab.bpe), and its reference ids, so that the GPT-2 loader is tested without ../shared
(tests/fixtures/gpt2_tiny/):
  python3 tools/make_gpt2_tiny.py cut ../shared/tokenizers/gpt2 tests/fixtures/gpt2_tiny [M=2000]
  python3 tools/make_gpt2_tiny.py ids tests/fixtures/gpt2_tiny     # where Hugging Face's tokenizers is
In GPT-2 the ids 0..255 are the byte symbols and merge k makes id 256 + k, so the first M merges
with the tokens they reach form a complete tokenizer; <|endoftext|> becomes id 256 + M. The ids are
written to reference.json by Hugging Face's `tokenizers` (the texts of tools/make_tokenizer_fixtures.py)."""
import json, os, sys


def cut(src, dst, m):
    enc = json.load(open(f"{src}/encoder.json", encoding="utf-8"))
    lines = open(f"{src}/vocab.bpe", encoding="utf-8").read().split("\n")
    header, merges = lines[0], [l for l in lines[1:] if l][:m]
    keep = {t: i for t, i in enc.items() if i < 256 + m}
    assert len(keep) == 256 + m, "ids below 256 + M are not contiguous"
    for k, mg in enumerate(merges):  # merge k makes token 256 + k
        assert keep["".join(mg.split(" "))] == 256 + k, mg
    keep["<|endoftext|>"] = 256 + m
    os.makedirs(dst, exist_ok=True)
    json.dump(keep, open(f"{dst}/encoder.json", "w", encoding="utf-8"), ensure_ascii=False)
    open(f"{dst}/vocab.bpe", "w", encoding="utf-8").write(header + "\n" + "\n".join(merges) + "\n")
    print(f"wrote {dst}: {len(keep)} tokens, {len(merges)} merges")


def ids(dst):
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_tokenizer_fixtures import TEXTS
    tk = Tokenizer(BPE.from_file(f"{dst}/encoder.json", f"{dst}/vocab.bpe"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens(["<|endoftext|>"])
    import tokenizers
    ref = {"texts": TEXTS, "ids": [tk.encode(t, add_special_tokens=False).ids for t in TEXTS],
           "library": "tokenizers " + tokenizers.__version__}
    json.dump(ref, open(f"{dst}/reference.json", "w", encoding="utf-8"), ensure_ascii=False)
    print(f"wrote {dst}/reference.json")


if __name__ == "__main__":
    if sys.argv[1] == "cut":
        cut(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 2000)
    else:
        ids(sys.argv[2])
