#!/usr/bin/env python3
"""A small SentencePiece tokenizer and its reference ids, so that the SentencePiece and llama2.c
tokenizer tests run without ../shared (tests/fixtures/spm/):
  /usr/bin/python3 tools/make_spm_fixtures.py [TRAIN.txt] [OUTDIR]
needs Debian's python3-sentencepiece (the library CompactLM links, 0.1.97). It trains a 400-piece
BPE model the way Llama-2's was configured (byte fallback, split digits, dummy prefix, identity
normalization, unk/bos/eos = 0/1/2) on TRAIN.txt (default: Debian's fortunes), writes
  tiny.model      the SentencePiece model
  tiny.bin        the same vocabulary in llama2.c's tokenizer.bin layout (max_token_length, then per
                  token: float score, int32 length, bytes; U+2581 written as a space, <s> / </s> as
                  llama2.c's exporter writes them)
  reference.json  the library's ids and decoded text for a list of texts."""
import json, os, struct, sys, tempfile

import sentencepiece as spm

TEXTS = [
    "Hello, world!",
    "Simply put, the theory of relativity states that ",
    "naïve café 123\n\n  x",
    "日本語 and emoji 🙂",
    "  leading and   multiple   spaces\tand tabs  ",
    "Numbers: 3.14159, 1234567890, 42nd",
    "The quick brown fox jumps over the lazy dog. " * 5,
    "",
    " ",
    "a",
]


def main(train, out):
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        spm.SentencePieceTrainer.train(
            input=train, model_prefix=f"{d}/tiny", vocab_size=400, model_type="bpe", byte_fallback=True,
            split_digits=True, add_dummy_prefix=True, normalization_rule_name="identity",
            remove_extra_whitespaces=False, allow_whitespace_only_pieces=True, character_coverage=0.9995,
            unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, input_sentence_size=200000,
            shuffle_input_sentence=False, minloglevel=2)
        model = open(f"{d}/tiny.model", "rb").read()
    open(f"{out}/tiny.model", "wb").write(model)
    sp = spm.SentencePieceProcessor(model_file=f"{out}/tiny.model")
    pieces, scores = [], []
    for i in range(sp.get_piece_size()):
        p, s = sp.id_to_piece(i), sp.get_score(i)
        if i == sp.bos_id():
            p = "\n<s>\n"
        elif i == sp.eos_id():
            p = "\n</s>\n"
        pieces.append(p.replace("\u2581", " ").encode("utf-8"))
        scores.append(s)
    with open(f"{out}/tiny.bin", "wb") as f:
        f.write(struct.pack("I", max(len(b) for b in pieces)))
        for b, s in zip(pieces, scores):
            f.write(struct.pack("fI", s, len(b)))
            f.write(b)
    ref = {"vocab_size": sp.get_piece_size(), "bos": sp.bos_id(), "eos": sp.eos_id(), "texts": TEXTS,
           "ids": [sp.encode(t) for t in TEXTS], "decoded": [sp.decode(sp.encode(t)) for t in TEXTS],
           "library": "sentencepiece " + spm.__version__}
    json.dump(ref, open(f"{out}/reference.json", "w", encoding="utf-8"), ensure_ascii=False, indent=1)
    print(f"wrote {out}: {sp.get_piece_size()} pieces, {len(model)} bytes")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/games/fortunes/fortunes",
         sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "spm"))
