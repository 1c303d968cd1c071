#!/usr/bin/env python3
"""Real text with planted word pairs, for training models that `clm eval --retrieval` can test.

`clm eval --retrieval N` plants a key word X and a value word Y at some depth of a window of real
text and ends the window with X: a model that continues with Y has copied from its context. Models
trained on plain PTB for minutes never learn to (0% at every length, docs/RESULTS.md), so the
retrieval task cannot tell position encodings apart. This tool writes a training corpus in which
such copies are worth learning: COPIES passes over the source's train split, each with fresh
plants, one episode every EVERY words on average: a span of random words ("X Y", or up to SPAN
words: a longer span gives more tokens to copy per episode, the classic setting in which induction
heads form) at some point and again GAP words later, GAP uniform in [2, MAX_GAP] (keep MAX_GAP
below the training length, so that every copy the model learns lies within the positions it is
trained on). The words are drawn uniformly from the train split's word types (as the evaluation
draws them from the test split's). The valid and test
splits are copied unchanged: perplexity stays comparable with models trained on the plain corpus,
and the retrieval evaluation plants its own pairs.

--synthetic F:K writes a corpus of its own instead (SRC_DIR unused): i.i.d. filler words f0..f{F-1},
episodes whose first word is one of K key words k0..k{K-1} and whose other words are any of the
F + K words, in all three splits (train: --words words; valid, test: a tenth each, other draws). The
filler carries nothing to learn, so copying is the whole signal, and the evaluation's keys (words
not yet seen in its window) are key words, its values any word, as in training: the passkey test's
usual synthetic setting, for models that do not learn to copy from real text in a few minutes.

--repeat LO:HI (with --synthetic) writes lines of LO..HI random words (any of the F + K) each followed
at once by the same words again: the repeated-sequence setting in which induction heads are studied,
half of every line predictable by copying and nothing else to learn. The gap between a word and its
copy is the line's length, which varies, so a head that copies from a fixed distance does not solve
it (a fixed length is learned that way in a few hundred steps and teaches nothing about retrieval).

usage: tools/make_passkey_corpus.py SRC_DIR DST_DIR [--copies 8] [--every 128] [--span 2] [--max-gap 240] [--seed 1]
                                    [--synthetic F:K --words 2000000 [--repeat LO:HI]]
  e.g. tools/make_passkey_corpus.py ../shared/data/ptb /tmp/ptb-passkey
       tools/make_passkey_corpus.py - /tmp/passkey-synth --synthetic 64:256 --every 16
"""
import argparse
import os
import random
import shutil
import sys


def split_file(d, key):
    names = sorted(n for n in os.listdir(d) if key in n and os.path.isfile(os.path.join(d, n)))
    if len(names) != 1:
        sys.exit(f"make_passkey_corpus: '{d}': expected one file with '{key}' in its name, found {names}")
    return names[0]


def plant(rng, lines, types, every, span, max_gap, keys=None):
    """One pass: the words of `lines` with episodes planted; line breaks kept as None."""
    words = []
    for ln in lines:
        words += ln.split()
        words.append(None)
    out, inserts = [], {}  # inserts: position in `words` -> pairs to put before it
    p = rng.randrange(every)
    while p < len(words):
        ep = [rng.choice(types) for _ in range(rng.randint(2, span))]
        if keys:
            ep[0] = rng.choice(keys)
        gap = rng.randint(2, max_gap)
        inserts.setdefault(p, []).append(ep)
        if p + gap < len(words):
            inserts.setdefault(p + gap, []).append(ep)
        p += rng.randint(every // 2, every + every // 2)
    for i, w in enumerate(words):
        for ep in inserts.get(i, ()):
            out += ep
        out.append(w)
    text, line = [], []
    for w in out:
        if w is None:
            text.append(" ".join(line))
            line = []
        else:
            line.append(w)
    return "\n".join(" " + t for t in text) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--every", type=int, default=128)
    ap.add_argument("--span", type=int, default=2, help="longest planted span (2: a key-value pair)")
    ap.add_argument("--max-gap", type=int, default=240)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--synthetic", help="F:K: filler and key words of a synthetic corpus (SRC_DIR unused)")
    ap.add_argument("--words", type=int, default=2000000, help="--synthetic: words of the train split")
    ap.add_argument("--repeat", help="LO:HI: --synthetic lines of LO..HI random words, each repeated at once "
                    "(--every, --span and --max-gap then unused)")
    a = ap.parse_args()
    if a.copies < 1 or a.every < 2 or a.max_gap < 2 or a.span < 2:
        sys.exit("make_passkey_corpus: --copies >= 1, --every >= 2, --span >= 2 and --max-gap >= 2")
    if a.repeat and not a.synthetic:
        sys.exit("make_passkey_corpus: --repeat goes with --synthetic F:K")
    if a.synthetic:
        try:
            nf, nk = (int(x) for x in a.synthetic.split(":"))
        except ValueError:
            sys.exit(f"make_passkey_corpus: --synthetic '{a.synthetic}': expected F:K, two integers")
        if nf < 2 or nk < 2 or a.words < 1000:
            sys.exit("make_passkey_corpus: --synthetic needs F >= 2 and K >= 2, and --words >= 1000")
        filler, keys = [f"f{i}" for i in range(nf)], [f"k{i}" for i in range(nk)]
        rng = random.Random(a.seed)
        os.makedirs(a.dst, exist_ok=True)
        if a.repeat:
            try:
                lo, hi = (int(x) for x in a.repeat.split(":"))
            except ValueError:
                sys.exit(f"make_passkey_corpus: --repeat '{a.repeat}': expected LO:HI, two integers")
            if not 1 <= lo <= hi:
                sys.exit("make_passkey_corpus: --repeat needs 1 <= LO <= HI")
            pool = filler + keys
            for split, n in (("train", a.words), ("valid", a.words // 10), ("test", a.words // 10)):
                with open(os.path.join(a.dst, split + ".txt"), "w") as f:
                    done = 0
                    while done < n:
                        s = [rng.choice(pool) for _ in range(rng.randint(lo, hi))]
                        f.write(" " + " ".join(s + s) + "\n")
                        done += 2 * len(s)
            return
        for split, n in (("train", a.words), ("valid", a.words // 10), ("test", a.words // 10)):
            lines = [" ".join(rng.choice(filler) for _ in range(16)) for _ in range(n // 16)]
            with open(os.path.join(a.dst, split + ".txt"), "w") as f:
                f.write(plant(rng, lines, filler + keys, a.every, a.span, a.max_gap, keys))
        return
    train = split_file(a.src, "train")
    with open(os.path.join(a.src, train)) as f:
        lines = f.read().splitlines()
    types = sorted({w for ln in lines for w in ln.split()} - {"<unk>", "<eos>"})
    rng = random.Random(a.seed)
    os.makedirs(a.dst, exist_ok=True)
    with open(os.path.join(a.dst, train), "w") as f:
        for _ in range(a.copies):
            f.write(plant(rng, lines, types, a.every, a.span, a.max_gap))
    for key in ("valid", "test"):
        name = split_file(a.src, key)
        shutil.copyfile(os.path.join(a.src, name), os.path.join(a.dst, name))


if __name__ == "__main__":
    main()
