#!/usr/bin/env python3
"""Training throughput, CompactLM vs PyTorch, same machine, same run, alternating A B A B.

  /usr/bin/python3 bench/train_vs_pytorch.py [--rounds 3] [--steps 8] [--clm build/bench/clm_bench_train] [shape flags]
  e.g. ... --arch lstm --d-model 200 --n-layers 2 --batch 20 --seq 35   (the small LSTM; tslm likewise)

Both use 2 threads on the reference Llama (d256, 6 layers, 8 heads / 4 KV, SwiGLU 688, seq 256,
batch 8, vocab 10k). PyTorch runs with OMP_WAIT_POLICY=PASSIVE (its best setting here).
Prints per-pair ratios and medians; --json writes the raw rows."""
import argparse, json, os, statistics, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))
p = argparse.ArgumentParser()
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--steps", type=int, default=8)
p.add_argument("--clm", default=os.path.join(here, "..", "build", "bench", "clm_bench_train"))
p.add_argument("--json", default="")
a, shape = p.parse_known_args()  # the rest (--arch lstm --d-model 200 --n-layers 2 --batch 20 --seq 35 ...) goes to both

common = ["--steps", str(a.steps), "--warmup", "2", "--threads", "2"] + shape
env_torch = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="2")
rows = []
for r in range(a.rounds):
    for name, cmd, env in (("compactlm", [a.clm] + common, dict(os.environ)),
                           ("pytorch", ["/usr/bin/python3", os.path.join(here, "torch_train.py")] + common, env_torch)):
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        row = json.loads(out)
        row["round"] = r
        rows.append(row)
        print(f"round {r} {name:10s} {row['tokens_per_s']:8.0f} tok/s  step {row['step_s_median']:.3f}s  peak RSS {row['peak_rss_mb']:.0f} MB", flush=True)

c = [x for x in rows if x["impl"] == "compactlm"]
t = [x for x in rows if x["impl"] != "compactlm"]
ratios = [ci["tokens_per_s"] / ti["tokens_per_s"] for ci, ti in zip(c, t)]
med = lambda xs: statistics.median(xs)
print(f"\nCompactLM: median {med([x['tokens_per_s'] for x in c]):.0f} tok/s (min {min(x['tokens_per_s'] for x in c):.0f}, max {max(x['tokens_per_s'] for x in c):.0f}), peak RSS {med([x['peak_rss_mb'] for x in c]):.0f} MB")
print(f"PyTorch:   median {med([x['tokens_per_s'] for x in t]):.0f} tok/s (min {min(x['tokens_per_s'] for x in t):.0f}, max {max(x['tokens_per_s'] for x in t):.0f}), peak RSS {med([x['peak_rss_mb'] for x in t]):.0f} MB  [{t[0]['impl']}]")
print(f"ratio CompactLM / PyTorch per pair: {', '.join(f'{r:.2f}' for r in ratios)}; median {med(ratios):.2f}")
if a.json:
    with open(a.json, "w") as f: json.dump(rows, f, indent=1)
