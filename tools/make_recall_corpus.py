#!/usr/bin/env python3
"""Associative-recall corpus for the KV-eviction harness (clm kv-bench --task recall).

Each line is one episode: `distinct` keys drawn from k0..k{keys-1}, each bound to a random value
v0..v{values-1}, then `pairs` key-value pairs sampled from those keys ("k17 v3 k5 v41 ...").
A value is predictable only when its key occurred earlier in the episode: a model that lowers
the loss on this text has learned to look a key up in its context (induction heads), which is
what evicting the key's cache cells can break. Writes DIR/train.txt, valid.txt, test.txt
(WikiText layout, so `clm train --data DIR` reads it with the word tokenizer).

usage: tools/make_recall_corpus.py DIR [--episodes 20000] [--seed 1]
"""
import argparse
import os
import random


def episode(rng, keys, values, distinct, pairs):
    ks = rng.sample(range(keys), distinct)
    bind = {k: rng.randrange(values) for k in ks}
    out = []
    for _ in range(pairs):
        k = rng.choice(ks)
        out += [f"k{k}", f"v{bind[k]}"]
    return " ".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--episodes", type=int, default=20000)
    ap.add_argument("--keys", type=int, default=512)
    ap.add_argument("--values", type=int, default=128)
    ap.add_argument("--distinct", type=int, default=48)
    ap.add_argument("--pairs", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.dir, exist_ok=True)
    # every key and value occurs in train (the word vocabulary is built from it)
    cover = " ".join(f"k{k} v{k % a.values}" for k in range(a.keys))
    for name, n in (("train.txt", a.episodes), ("valid.txt", max(50, a.episodes // 100)), ("test.txt", max(50, a.episodes // 100))):
        with open(os.path.join(a.dir, name), "w") as f:
            if name == "train.txt":
                f.write(cover + "\n")
            for _ in range(n):
                f.write(episode(rng, a.keys, a.values, a.distinct, a.pairs) + "\n")


if __name__ == "__main__":
    main()
