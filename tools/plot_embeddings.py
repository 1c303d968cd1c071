#!/usr/bin/env python3
"""Perplexity against embedding parameters (docs/img/see_ptb_device.svg) from
docs/data/see_ptb_device.jsonl (one line per run: plan, run, embedding_params, test_ppl).

  /usr/bin/python3 tools/plot_embeddings.py docs/data/see_ptb_device.jsonl docs/img/see_ptb_device.svg
Needs Debian's python3-matplotlib."""
import json
import sys

import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt

rows = [json.loads(l) for l in open(sys.argv[1])]
fig, ax = plt.subplots(figsize=(7, 4.5))
styles = {"see-wn": ("SEE, WordNet units", "o-"), "see-hash": ("SEE, hashed units", "s"), "see-sw": ("SEE, subword units", "^"),
          "fact": ("factorised (ALBERT)", "D"), "hashed": ("hash embeddings", "v"), "softmax": ("dense", "*")}
for plan, fill in (("s7", "none"), ("s8", "full")):
    for key, (label, marker) in styles.items():
        pts = sorted((r["embedding_params"], r["test_ppl"]) for r in rows
                     if r["plan"] == plan and r["run"].startswith("ptb-" + key) and "lr3" not in r["run"] and r["test_ppl"] < 3000)
        if not pts: continue
        ax.plot([p for p, _ in pts], [q for _, q in pts], marker, fillstyle=fill, ms=8,
                label=f"{label} ({'run 1: 0.37M tokens' if plan == 's7' else 'run 2: 0.29M tokens; SEE factors std 0.3'})")
ax.set_xscale("log")
ax.set_xlabel("embedding parameters (dense: 2.56M)")
ax.set_ylabel("PTB test perplexity")
ax.set_title("Compact embeddings trained from scratch, same 5.7M-body transformer")
ax.grid(alpha=0.3)
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(sys.argv[2])
print("wrote", sys.argv[2])
