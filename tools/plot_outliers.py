#!/usr/bin/env python3
"""ARCQuant against RTN NVFP4 W4A4 over a run's training (scripts/quant_outliers.sh): the perplexity
each loses against f32 at each checkpoint, one panel per model, with the outlier ratio (max / median
of the calibrated channel maxima) on a second axis.

  /usr/bin/python3 tools/plot_outliers.py docs/img/quant_outliers.svg \\
      "11.7M, CPU:docs/data/quant_outliers_wt2_s12.jsonl" "101M, H200:docs/data/quant_outliers_gpu101m_s17.txt"
Each source: quant_outliers.sh's report.jsonl, or a text holding quant_outliers.py's Markdown table
(its outlier column is then read from the table). Needs python3-matplotlib."""
import json
import re
import sys

import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt


def load(path):
    """step -> {"none": ppl, "rtn": ppl, "arcquant": ppl, "ratio": outlier ratio or None}"""
    rows = {}
    text = open(path).read()
    if path.endswith(".jsonl"):
        for line in text.splitlines():
            j = json.loads(line)
            step = int(re.search(r"step-0*(\d+)", j["model"]).group(1))
            rows.setdefault(step, {"ratio": None})[j["method"]] = j["ppl"]
        return rows
    for line in text.splitlines():  # | step | ratio | above | f32 | rtn (..) | arc (..) | ...
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and cells[0].isdigit():
            num = lambda c: float(c.split()[0])
            rows[int(cells[0])] = {"ratio": num(cells[1]), "none": num(cells[3]), "rtn": num(cells[4]), "arcquant": num(cells[5])}
    return rows


out, sources = sys.argv[1], sys.argv[2:]
fig, axes = plt.subplots(1, len(sources), figsize=(6 * len(sources), 4.2), squeeze=False)
for ax, src in zip(axes[0], sources):
    title, path = src.split(":", 1)
    rows = load(path)
    steps = sorted(s for s in rows if {"none", "rtn", "arcquant"} <= rows[s].keys())
    loss = lambda m: [100 * (rows[s][m] / rows[s]["none"] - 1) for s in steps]
    ax.plot(steps, loss("rtn"), "o-", label="RTN NVFP4 W4A4 (4.5 bits)")
    ax.plot(steps, loss("arcquant"), "s-", label="ARCQuant (ratio-rule KE)")
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel("perplexity lost against f32 (%)")
    ax.set_title(title)
    ratios = [rows[s]["ratio"] for s in steps]
    if all(r is not None for r in ratios):
        ax2 = ax.twinx()
        ax2.plot(steps, ratios, "k:", label="outlier ratio max/median")
        ax2.set_ylabel("channel max / median", fontsize=8)
        ax2.legend(loc="upper right", fontsize=7)
    ax.legend(loc="upper left", fontsize=7)
fig.tight_layout()
fig.savefig(out)
print("wrote", out)
