#!/usr/bin/env python3
"""Reference for `clm eval --task`: lm-eval's request construction and log-likelihoods, in PyTorch.

Writes into tests/fixtures/tasks/:
  data/<task>/...          a few invented examples per task in each task's file format (the real
                           task data are never committed; these exercise every format's corners:
                           numeric ARC labels, BoolQ's string labels, HellaSwag's tags and double
                           spaces, WinoGrande's partial scoring, non-ASCII text, long contexts cut
                           to the window)
  byte_llama/              a CompactLM checkpoint folder (config.json, model.safetensors, tokenizer.json):
                           a tiny Llama over bytes (vocab 257: 256 bytes + <eos>), seeded weights
  reference.json           per task: every request (context, continuation) as lm-eval builds it,
                           its log-likelihood (float64) and greedy flag, acc and acc_norm
  real_prompts.json        when ../shared/data/tasks exists: per real task, the example count and
                           an FNV-1a hash of each of the first 64 examples' requests (checks the
                           C++ construction on the real files without committing their text)

The construction follows lm-evaluation-harness 0.4 (tasks' yaml and utils, HFLM._encode_pair,
HFLM._loglikelihood_tokens), written here from those rules, independently of the C++.
Run with Debian's python3-torch:  /usr/bin/python3 tools/make_task_fixtures.py
"""
import bz2
import json
import math
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import CONFIGS, forward, make_params, write_safetensors  # noqa: E402

OUT = "tests/fixtures/tasks"
MAX_LEN = 48
CFG = dict(CONFIGS["llama_tiny"], vocab_size=257, max_seq_len=MAX_LEN)
EOS = 256  # the byte tokenizer's <eos>; it has no BOS, so an empty context becomes <eos>

# ---- invented examples, one list per task, in the task's own file format ----
DATA = {
    "lambada_openai/lambada_test.jsonl": [
        {"text": "the cat sat on the mat and the dog sat on the mat"},
        {"text": "she opened the door, looked outside and saw the garden"},
        {"text": "a b"},
    ],
    "piqa/valid.jsonl": [
        {"goal": "How do I boil an egg?", "sol1": "Put it in boiling water.", "sol2": "Put it in the freezer."},
        {"goal": "Keep bread fresh ", "sol1": "Seal it in a bag.", "sol2": "Leave it in the sun."},
        {"goal": "Make café au lait", "sol1": "Mix coffee and hot milk.", "sol2": "Mix tea and ice."},
    ],
    "piqa/valid-labels.lst": ["0", "0", "0"],
    "arc_easy/ARC-Easy-Test.jsonl": [
        {"id": "Q1", "question": {"stem": "What do plants need to make food?", "choices": [
            {"text": "sunlight", "label": "A"}, {"text": "sand", "label": "B"}, {"text": "noise", "label": "C"},
            {"text": "plastic", "label": "D"}]}, "answerKey": "A"},
        {"id": "Q2", "question": {"stem": "Which is a gas at room temperature?", "choices": [
            {"text": "iron", "label": "1"}, {"text": "oxygen", "label": "2"}, {"text": "wood", "label": "3"}]}, "answerKey": "2"},
    ],
    "arc_challenge/ARC-Challenge-Test.jsonl": [
        {"id": "C1", "question": {"stem": "Why does ice float on water?", "choices": [
            {"text": "It is less dense than liquid water.", "label": "A"}, {"text": "It is colder.", "label": "B"},
            {"text": "It is heavier.", "label": "C"}, {"text": "It contains air only.", "label": "D"},
            {"text": "It is magnetic.", "label": "E"}]}, "answerKey": "A"},
    ],
    "boolq/val.jsonl": [
        {"question": "is the sky blue", "passage": "Sky -- The sky looks blue on a clear day because air scatters short wavelengths of sunlight more than long ones.",
         "idx": 0, "label": "true"},
        {"question": "do fish fly", "passage": "Fish -- Most fish swim.", "idx": 1, "label": "false"},
    ],
    "hellaswag/hellaswag_val_full.txt": [
        "Baking cookies: A woman mixes flour in a bowl. she",
        "2",
        "throws the bowl [title] away.",
        "paints the  wall.",
        "adds sugar and  eggs, then stirs.",
        "[header] sings a song.",
        "Fixing a bike [title] Remove the wheel. [step] Take",
        "0",
        "the tire off the rim.",
        "a nap on the grass.",
        "the bus home.",
        "a photo   of the sky.",
    ],
    "winogrande/winogrande_llmfoundry.jsonl": [
        {"context_options": ["The trophy did not fit in the case because the trophy", "The trophy did not fit in the case because the case"],
         "continuation": "was too big.", "gold": 0},
        {"context_options": ["Anna helped Maria because Anna ", "Anna helped Maria because Maria "],
         "continuation": " needed help. ", "gold": 1},
    ],
}


# ---- lm-eval's construction ----
def hellaswag_preprocess(text):
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def build(task, folder):
    """Examples as (requests [(context, continuation)], gold, choice lengths for acc_norm or None)."""
    def jsonl(name):
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            return [json.loads(l) for l in f if l.strip()]

    def lines(name):
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            return [l.rstrip("\n").rstrip("\r") for l in f]

    def mc(ctx, choices, gold, norm=True):
        return [(ctx, " " + c) for c in choices], gold, ([len(c) for c in choices] if norm else None)

    out = []
    if task == "lambada_openai":
        for d in jsonl("lambada_openai/lambada_test.jsonl"):
            ctx, last = d["text"].rsplit(" ", 1)
            out.append(([(ctx, " " + last)], 0, None))
    elif task == "piqa":
        labels = [l for l in lines("piqa/valid-labels.lst") if l]
        for d, lab in zip(jsonl("piqa/valid.jsonl"), labels):
            out.append(mc("Question: " + d["goal"] + "\nAnswer:", [d["sol1"], d["sol2"]], int(lab)))
    elif task in ("arc_easy", "arc_challenge"):
        name = "ARC-Easy-Test.jsonl" if task == "arc_easy" else "ARC-Challenge-Test.jsonl"
        for d in jsonl(f"{task}/{name}"):
            labels = [c["label"] for c in d["question"]["choices"]]
            out.append(mc("Question: " + d["question"]["stem"] + "\nAnswer:", [c["text"] for c in d["question"]["choices"]],
                          labels.index(d["answerKey"])))
    elif task == "boolq":
        for d in jsonl("boolq/val.jsonl"):
            out.append(mc(f"{d['passage']}\nQuestion: {d['question']}?\nAnswer:", ["no", "yes"], int(d["label"] == "true"), norm=False))
    elif task == "hellaswag":
        p = os.path.join(folder, "hellaswag/hellaswag_val_full.txt")
        text = open(p, encoding="utf-8").read() if os.path.exists(p) else bz2.open(p + ".bz2", "rt", encoding="utf-8").read()
        ls = text.split("\n")
        while ls and ls[-1] == "": ls.pop()
        for i in range(0, len(ls), 6):
            out.append(mc(hellaswag_preprocess(ls[i]), [hellaswag_preprocess(e) for e in ls[i + 2:i + 6]], int(ls[i + 1])))
    elif task == "winogrande":
        for d in jsonl("winogrande/winogrande_llmfoundry.jsonl"):
            cont = " " + d["continuation"].strip()
            out.append(([(c, cont) for c in d["context_options"]], d["gold"], None))
    return out


def encode(s):
    return list(s.encode("utf-8"))


def encode_pair(ctx, cont):  # HFLM._encode_pair
    n = len(ctx) - len(ctx.rstrip(" "))
    if n > 0:
        cont = ctx[-n:] + cont
        ctx = ctx[:-n]
    if ctx == "":
        return [EOS], encode(cont)
    whole, c = encode(ctx + cont), encode(ctx)
    return c, whole[len(c):]


def loglikelihood(params, ctx, cont):  # HFLM._loglikelihood_tokens for one request
    c, k = encode_pair(ctx, cont)
    inp = (c + k)[-(MAX_LEN + 1):][:-1]
    logits = forward(CFG, params, torch.tensor([inp]))  # [len, V] float64
    logp = torch.log_softmax(logits[len(inp) - len(k):], dim=-1)
    target = torch.tensor(k)
    greedy = bool((logp.argmax(-1) == target).all())
    return float(logp[torch.arange(len(k)), target].sum()), greedy


def fnv1a(s):
    h = 0xcbf29ce484222325
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return format(h, "016x")


def example_key(reqs):  # the text the hash covers: each request's context and continuation, NUL-separated
    return "".join(c + "\0" + k + "\0" for c, k in reqs)


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, rows in DATA.items():
        path = os.path.join(OUT, "data", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            for r in rows: f.write((json.dumps(r, ensure_ascii=False) if isinstance(r, dict) else r) + "\n")
    g = torch.Generator().manual_seed(4321)
    params = make_params(CFG, g)
    ck = os.path.join(OUT, "byte_llama")
    os.makedirs(ck, exist_ok=True)
    write_safetensors(os.path.join(ck, "model.safetensors"), {k: v.float() for k, v in params.items()}, {"format": "compactlm"})
    with open(os.path.join(ck, "config.json"), "w") as f: json.dump(CFG, f, indent=1)
    with open(os.path.join(ck, "tokenizer.json"), "w") as f: json.dump({"type": "byte"}, f)
    p64 = {k: v.float().double() for k, v in params.items()}
    ref = {"max_len": MAX_LEN, "tasks": {}}
    with torch.no_grad():
        for task in ["lambada_openai", "piqa", "arc_easy", "arc_challenge", "boolq", "hellaswag", "winogrande"]:
            exs = build(task, os.path.join(OUT, "data"))
            reqs, lls, greedy = [], [], []
            acc = norm = 0
            for r, gold, lens in exs:
                res = [loglikelihood(p64, c, k) for c, k in r]
                reqs += [list(x) for x in r]
                lls += [x[0] for x in res]
                greedy += [x[1] for x in res]
                if task == "lambada_openai":
                    acc += res[0][1]
                else:
                    ll = [x[0] for x in res]
                    acc += max(range(len(ll)), key=lambda i: (ll[i], -i)) == gold
                    if lens: norm += max(range(len(ll)), key=lambda i: (ll[i] / lens[i], -i)) == gold
            t = {"requests": reqs, "logprob": lls, "greedy": greedy, "acc": acc / len(exs)}
            if task in ("piqa", "arc_easy", "arc_challenge", "hellaswag"): t["acc_norm"] = norm / len(exs)
            if task == "lambada_openai": t["ppl"] = math.exp(-sum(lls) / len(lls))
            ref["tasks"][task] = t
            print(f"{task}: {len(exs)} examples, acc {t['acc']:.3f}")
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1, ensure_ascii=False)
    shared = os.environ.get("CLM_SHARED", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared"))
    folder = os.path.join(shared, "data/tasks")
    if os.path.isdir(folder):
        real = {}
        for task in ["lambada_openai", "piqa", "arc_easy", "arc_challenge", "boolq", "hellaswag", "winogrande"]:
            exs = build(task, folder)
            real[task] = {"count": len(exs), "gold": [e[1] for e in exs[:64]], "hash": [fnv1a(example_key(e[0])) for e in exs[:64]]}
            print(f"real {task}: {len(exs)} examples")
        with open(os.path.join(OUT, "real_prompts.json"), "w") as f:
            json.dump(real, f, indent=1)


if __name__ == "__main__":
    main()
