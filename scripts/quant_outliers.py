#!/usr/bin/env python3
"""The table of scripts/quant_outliers.sh: per checkpoint, the strength of its activation outliers
(from its calibration: max / median of the per-channel maxima, averaged over the Linears; the share
of elements above 1/8 of their token's maximum, ARCQuant's ratio) against what RTN NVFP4 W4A4 and
ARCQuant lose in perplexity, ARCQuant's average bits and KE.
  python3 scripts/quant_outliers.py OUT_DIR   (prints a Markdown table)"""
import json, statistics, sys, os, re

out = sys.argv[1]
rows = {}
for line in open(os.path.join(out, "report.jsonl")):
    j = json.loads(line)
    step = int(re.search(r"step-0*(\d+)", j["model"]).group(1))
    rows.setdefault(step, {})[j["method"] if j["method"] != "arcquant" else "arcquant"] = j
print("| step | outlier ratio max/median (mean over Linears) | elements > max/8 | f32 ppl | RTN NVFP4 W4A4 | ARCQuant | ARCQuant bits | mean KE / K | ARCQuant's share of RTN's loss recovered |")
print("|---|---|---|---|---|---|---|---|---|")
for step in sorted(rows):
    r = rows[step]
    if not {"none", "rtn", "arcquant"} <= r.keys():
        continue
    cal = json.load(open(os.path.join(out, f"calib-{step}.json")))["inputs"]
    ratios, above = [], []
    for name, s in cal.items():
        a = sorted(s["absmax"])
        ratios.append(a[-1] / max(statistics.median(a), 1e-12))
        above.append(s["above_abs"] / (s["tokens"] * s["in"]))
    f, q, arc = r["none"]["ppl"], r["rtn"]["ppl"], r["arcquant"]["ppl"]
    ke = [(l["k_eff"] - l["in"]) / l["in"] for l in r["arcquant"].get("layers", [])]
    rec = (q - arc) / (q - f) if q != f else float("nan")
    print(f"| {step} | {statistics.mean(ratios):.1f} | {statistics.mean(above):.1%} | {f:.2f} | {q:.2f} ({q / f - 1:+.2%}) | "
          f"{arc:.2f} ({arc / f - 1:+.2%}) | {r['arcquant']['w_bits']:.2f} | {statistics.mean(ke):.2f} | {rec:.0%} |")
