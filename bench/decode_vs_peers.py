#!/usr/bin/env python3
"""Batch-1 decode speed, CompactLM vs llama2.c's run.c, llama.cpp and PyTorch: same machine, same
run, alternating.

  # peers are built / installed OUTSIDE the project:
  #   llama2.c:  gcc -Ofast -fopenmp -march=native run.c -lm -o /tmp/llama2c/run
  #   llama.cpp: mkdir /tmp/nlc && cd /tmp/nlc && npm install node-llama-cpp@3.21.1
  python3 bench/decode_vs_peers.py --run /tmp/llama2c/run --nlc /tmp/nlc --torch \
      --tokenizer ../shared/tokenizers/llama2/tokenizer.bin

Both decode the same random-initialised ~110M Llama (dim 768, 12 layers, 12 heads, hidden 2048,
vocab 32000; exported by clm_bench_decode --export-llama2c) with 2 OpenMP threads. CompactLM is
measured with f32 and bf16 weights; a read-only sum in the same process gives the bound
(read bandwidth / bytes of weights per token; a STREAM-like triad is reported beside it)."""
import argparse, json, os, re, statistics, subprocess

here = os.path.dirname(os.path.abspath(__file__))
p = argparse.ArgumentParser()
p.add_argument("--run", required=True, help="llama2.c run binary (built outside the project)")
p.add_argument("--tokenizer", required=True, help="llama2.c tokenizer.bin with 32000 tokens")
p.add_argument("--bench", default=os.path.join(here, "..", "build", "bench", "clm_bench_decode"))
p.add_argument("--model", default="/tmp/clm_bench_110m.bin")
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--nlc", default="", help="folder where node-llama-cpp is installed (llama.cpp peer, GGUF f32 and bf16)")
p.add_argument("--nlc-threads", default="1", help="llama.cpp threads (1 is faster than 2 under Node here)")
p.add_argument("--torch", action="store_true", help="also run the PyTorch peer (Debian python3-torch)")
p.add_argument("--clm", default=os.path.join(here, "..", "build", "clm"))
p.add_argument("--prompt", type=int, default=64, help="prompt length for the prefill measurement (one batch)")
a = p.parse_args()

env = dict(os.environ, OMP_NUM_THREADS="2")
if not os.path.exists(a.model):
    subprocess.run([a.bench, "--tokens", "4", "--only", "f32", "--export-llama2c", a.model], env=env, check=True,
                   capture_output=True)
if a.nlc:
    for dt in ("f32", "bf16"):
        g = f"{a.model}.{dt}.gguf"
        if not os.path.exists(g):
            subprocess.run([a.clm, "convert", "--model", a.model, "--tokenizer", a.tokenizer, "--to", "gguf", "--dtype", dt,
                            "--out", g], check=True, capture_output=True)
ours, peer, lcpp, lcpp16, pt = [], [], [], [], []
pre_lcpp, pre_pt = [], []
for r in range(a.rounds):
    o = json.loads(subprocess.run([a.bench, "--tokens", "64", "--prompt", str(a.prompt), "--threads", "2"], env=env, check=True,
                                  capture_output=True, text=True).stdout.strip().splitlines()[-1])
    ours.append(o)
    err = subprocess.run([a.run, a.model, "-z", a.tokenizer, "-t", "0", "-n", "128", "-i", "Once upon a time"],
                         env=env, capture_output=True, text=True).stderr
    tps = float(re.search(r"achieved tok/s: ([0-9.]+)", err).group(1))
    peer.append(tps)
    extra = ""
    if a.nlc:
        for dt, acc in (("f32", lcpp), ("bf16", lcpp16)):
            out = subprocess.run(["node", os.path.join(here, "nlc_decode.mjs"), a.nlc, f"{a.model}.{dt}.gguf", a.nlc_threads, "64",
                                  str(a.prompt), "2"], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            acc.append(json.loads(out)["decode_tok_s"])
            if dt == "f32":
                pre_lcpp.append(json.loads(out)["prefill_tok_s"])
        extra += f" | llama.cpp f32 {lcpp[-1]:.1f}, bf16 {lcpp16[-1]:.1f}"
    if a.torch:
        out = subprocess.run(["/usr/bin/python3", os.path.join(here, "torch_decode.py"), a.model, "32", str(a.prompt)],
                             env=dict(env, OMP_WAIT_POLICY="PASSIVE"), capture_output=True, text=True, check=True).stdout
        pt.append(json.loads(out.strip().splitlines()[-1])["decode_tok_s"])
        pre_pt.append(json.loads(out.strip().splitlines()[-1])["prefill_tok_s"])
        extra += f" | PyTorch f32 {pt[-1]:.1f}"
    print(f"round {r}: compactlm f32 {o['f32']['decode_tok_s']:.1f} tok/s, bf16 {o['bf16']['decode_tok_s']:.1f} tok/s "
          f"(read {o['read_gbs']:.1f} GB/s, triad {o['triad_gbs']:.1f} GB/s) | llama2.c f32 {tps:.1f} tok/s{extra}", flush=True)
med = statistics.median
f32 = [o["f32"]["decode_tok_s"] for o in ours]
bf16 = [o["bf16"]["decode_tok_s"] for o in ours]
bound = med([o["f32"]["bound_tok_s"] for o in ours])
bound16 = med([o["bf16"]["bound_tok_s"] for o in ours])
print(f"\nread bandwidth (median): {med([o['read_gbs'] for o in ours]):.1f} GB/s (triad {med([o['triad_gbs'] for o in ours]):.1f}) -> f32 bound {bound:.1f} tok/s, bf16 bound {bound16:.1f} tok/s")
print(f"CompactLM f32:  median {med(f32):.1f} tok/s ({med(f32) / bound:.0%} of bound), prefill {med([o['f32']['prefill_tok_s'] for o in ours]):.0f} tok/s")
print(f"CompactLM bf16: median {med(bf16):.1f} tok/s ({med(bf16) / bound16:.0%} of bound)")
print(f"llama2.c f32:   median {med(peer):.1f} tok/s ({med(peer) / bound:.0%} of bound)")
print(f"ratios per round, f32 / llama2.c: {', '.join(f'{x / y:.2f}' for x, y in zip(f32, peer))}; "
      f"bf16 / llama2.c f32: {', '.join(f'{x / y:.2f}' for x, y in zip(bf16, peer))}")
if lcpp:
    print(f"llama.cpp ({a.nlc_threads} thread) f32: median {med(lcpp):.1f}, bf16: median {med(lcpp16):.1f} tok/s; "
          f"CompactLM/llama.cpp f32 {med(f32) / med(lcpp):.2f}, bf16 {med(bf16) / med(lcpp16):.2f}")
if pt:
    print(f"PyTorch f32: median {med(pt):.1f} tok/s; CompactLM f32 / PyTorch {med(f32) / med(pt):.2f}")
pre = med([o["f32"]["prefill_tok_s"] for o in ours])
line = f"prefill of {a.prompt} tokens (one batch, 2 threads), f32: CompactLM median {pre:.0f} tok/s"
if pre_lcpp:
    line += f" | llama.cpp {med(pre_lcpp):.0f} (ratio {pre / med(pre_lcpp):.2f})"
if pre_pt:
    line += f" | PyTorch {med(pre_pt):.0f} (ratio {pre / med(pre_pt):.2f})"
print(line + f" | llama2.c has no batched prefill (prompt tokens go through its per-token forward: {med(peer):.1f} tok/s, ratio {pre / med(peer):.1f})")
