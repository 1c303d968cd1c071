#!/usr/bin/env python3
"""Compressing a trained model's embedding (scripts/see_compress.sh): test perplexity of each
variant against its embedding parameters, the dense original and the dense control (the same
stage-2 steps without compression) as lines.

  /usr/bin/python3 tools/plot_compress.py docs/data/see_compress_ptb_s16.jsonl docs/img/see_compress_ptb_s16.svg
One JSON line per run: run, label, embedding_params, valid_ppl, test_ppl. Needs python3-matplotlib."""
import json
import sys

import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt

rows = [json.loads(l) for l in open(sys.argv[1])]
fig, ax = plt.subplots(figsize=(7.5, 4.5))
lines = {"dense": ("dense original", "--"), "dense-control": ("dense, same stage-2 steps", ":")}
for r in rows:
    if r["run"] in lines:
        label, style = lines[r["run"]]
        ax.axhline(r["test_ppl"], linestyle=style, color="gray")
        ax.text(2.7e5, r["test_ppl"], f" {label} ({r['test_ppl']:.1f})", va="bottom", fontsize=7)
markers = "osD^v<>ph"
for i, r in enumerate(x for x in rows if x["run"] not in lines):
    ax.plot(r["embedding_params"], r["test_ppl"], markers[i % len(markers)], ms=8, label=f"{r['label']}: {r['test_ppl']:.1f}")
ax.set_xscale("log")
ax.set_xlim(2.3e5, 3.2e5)
ax.set_xlabel("embedding parameters (dense: 2.56M; all variants at about 10x)")
ax.set_ylabel("PTB test perplexity")
ax.set_title("Compressing a trained model's embedding 10x (stage 1 fit + 600 stage-2 steps)")
ax.grid(alpha=0.3)
ax.legend(fontsize=7, loc="upper left")
fig.tight_layout()
fig.savefig(sys.argv[2])
print("wrote", sys.argv[2])
