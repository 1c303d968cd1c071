#!/usr/bin/env python3
"""Compressing a trained model's embedding (scripts/see_compress.sh): test perplexity of each
variant against its embedding parameters, the dense original and the dense control (the same
stage-2 steps without compression) as lines.

  /usr/bin/python3 tools/plot_compress.py docs/data/see_compress_ptb_s16.jsonl docs/img/see_compress_ptb_s16.svg [YLABEL [TITLE]]
One JSON line per run: run, label, embedding_params, valid_ppl, test_ppl; rows with a "method" key are
joined by one line per method (compression levels), labelled by the method. Needs python3-matplotlib."""
import json
import sys

import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt

rows = [json.loads(l) for l in open(sys.argv[1])]
ylabel = sys.argv[3] if len(sys.argv) > 3 else "PTB test perplexity"
title = sys.argv[4] if len(sys.argv) > 4 else "Compressing a trained model's embedding 10x (stage 1 fit + 600 stage-2 steps)"
lines = {"dense": ("dense original", "--"), "dense-control": ("dense, same stage-2 steps", ":")}
variants = [r for r in rows if r["run"] not in lines]
xmin, xmax = min(r["embedding_params"] for r in variants) * 0.9, max(r["embedding_params"] for r in variants) * 1.25
dense_params = max(r["embedding_params"] for r in rows)
fig, ax = plt.subplots(figsize=(7.5, 4.5))
for r in rows:
    if r["run"] in lines:
        label, style = lines[r["run"]]
        ax.axhline(r["test_ppl"], linestyle=style, color="gray")
        ax.text(xmin * 1.02, r["test_ppl"], f" {label} ({r['test_ppl']:.1f})", va="bottom", fontsize=7)
markers = "osD^v<>ph"
methods = list(dict.fromkeys(r["method"] for r in variants if "method" in r))
for i, m in enumerate(methods):
    pts = sorted((r["embedding_params"], r["test_ppl"]) for r in variants if r.get("method") == m)
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "-" + markers[i % len(markers)], ms=7, label=m)
    for x, y in pts:
        ax.annotate(f"{y:.0f}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
for i, r in enumerate(r for r in variants if "method" not in r):
    ax.plot(r["embedding_params"], r["test_ppl"], markers[(i + len(methods)) % len(markers)], ms=8, label=f"{r['label']}: {r['test_ppl']:.1f}")
ax.set_xscale("log")
ax.set_xlim(xmin, xmax)
if max(r["test_ppl"] for r in rows) > 4 * min(r["test_ppl"] for r in rows):
    ax.set_yscale("log")
ax.set_xlabel(f"embedding parameters (dense: {dense_params:,})")
ax.set_ylabel(ylabel)
ax.set_title(title, fontsize=10)
ax.grid(alpha=0.3)
ax.legend(fontsize=7, loc="upper left")
fig.tight_layout()
fig.savefig(sys.argv[2])
print("wrote", sys.argv[2])
