#!/usr/bin/env python3
"""Markdown table from clm kv-bench JSONL rows: one row per policy, one column per budget, each
cell "metric (kept fraction)".  usage: tools/kv_table.py FILE.jsonl [metric]"""
import json
import sys


def main():
    path = sys.argv[1]
    rows = [json.loads(l) for l in open(path) if l.strip()]
    metric = sys.argv[2] if len(sys.argv) > 2 else ("accuracy" if "accuracy" in rows[0] else "ppl")
    budgets = sorted({r["budget"] for r in rows if r["policy"] != "full"})
    full = [r for r in rows if r["policy"] == "full"]
    fmt = (lambda v: f"{100 * v:.1f}%") if metric in ("accuracy", "top1") else (lambda v: f"{v:.2f}")
    print("| policy | " + " | ".join(f"budget {b:g}" for b in budgets) + " |")
    print("|---|" + "---|" * len(budgets))
    if full:
        print(f"| full (kept 1.00) | {fmt(full[-1][metric])} |" + " |" * (len(budgets) - 1))
    label = lambda r: r["policy"] + "".join(f" {k}={v}" for k, v in sorted((r.get("opts") or {}).items()))
    for p in sorted({label(r) for r in rows if r["policy"] != "full"}):
        cells = []
        for b in budgets:
            m = [r for r in rows if label(r) == p and r["budget"] == b]
            cells.append(f"{fmt(m[-1][metric])} ({m[-1]['kv_frac']:.2f})" if m else "")
        print(f"| {p} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
