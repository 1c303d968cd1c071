#!/usr/bin/env python3
"""Mutation check: each entry is a deliberate bug (one source edit) that some test must catch.
Applies one mutation at a time, rebuilds, runs the named tests, restores the file. Prints a line
per mutation and the score; exits 1 if any mutation survives.
usage: tools/mutate.py [BUILD_DIR]   (run it once per change that reshapes the core)"""
import subprocess, sys, pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
# (file, text, replacement, tests that must fail, what the bug is)
MUTATIONS = [
    ("src/nn/module.cpp", "  if (b) {\n    const float* bb", "  if (false && b) {\n    const float* bb",
     "Infer.PackedDecode", "inference drops the Linear bias"),
    ("src/nn/norms.cpp", "1, D, float(eps), float(offset));", "1, D, float(eps), 0.0f);",
     "Infer.PackedDecode", "inference RMSNorm ignores the (1 + w) offset"),
    ("src/eval/perplexity.cpp", "stream[w.start + t + 1] : -1", "stream[w.start + t] : -1",
     "Perplexity", "perplexity scores each token against itself (targets shifted by one)"),
    ("src/formats/safetensors.cpp", "if (b > en || en > data_size)", "if (b > en || en > data_size + 4)",
     "SafeTensors", "safetensors bounds loosened by 4 bytes"),
    ("src/kernels/cpu/attend.cpp", "if (pos[i] > qpos) ++masked;", "if (pos[i] > qpos + 1) ++masked;",
     "Formats.Attend|KVCells|CacheParity", "attention mask lets a query see the next position"),
    ("src/nn/kv_cache.cpp", "    if (!keep[r]) continue;\n", "",
     "KVCells", "KV compaction keeps every cell"),
    ("src/nn/position.cpp", "ctx.pos[t] * half, *s = isin_.data() + ctx.pos[t] * half", "t * half, *s = isin_.data() + t * half",
     "CacheParity|Infer", "inference rotary uses the index in the call, not the token's position"),
    ("src/kernels/cpu/vec_simd.h", "float s = S::hsum(S::add(a0, a1));", "float s = S::hsum(a0);",
     "Vec|Formats", "SIMD dot drops its second accumulator"),
    ("src/cli/train.cpp", "    if (!rec.is_null()) a.data = DataArgs::from_json(rec);\n", "",
     "Cli.Resume", "train --resume forgets the run's corpus"),
    ("src/train/trainer.cpp", "if (!std::isfinite(loss) || !std::isfinite(gnorm)) {", "if (false) {",
     "Nan", "the NaN guard is off"),
    ("src/kernels/cpu/vec_simd.h", "if (w == T) gemm_tile<G>(pq, xt, T, kw, o, ldo, k0 > 0);", "if (w == T) gemm_tile<G>(pq, xt, T, kw, o, ldo, false);",
     "Vec|Formats", "the prefill GEMM forgets the earlier column blocks of a full tile"),
    ("src/kernels/cpu/panel.cpp", "    v.widen_bf16(bf16() + b0 * step, wp.data(), np * step);\n          p = wp.data();", "    v.widen_bf16(bf16() + b0 * step, wp.data(), np * step);",
     "Formats", "bf16 prefill multiplies the raw bf16 codes as if they were f32"),
    ("src/tokenizers/llama2c.cpp", "ids.push_back(int32_t((unsigned char)text[i + k]) + 3);", "ids.push_back(int32_t((unsigned char)text[i + k]) + 2);",
     "SentencePiece|Llama2c", "the llama2.c tokenizer's byte fallback is off by one id"),
    ("src/models/io.cpp", "    if ((linear.count(v.get()) || (keep_views && table)) && floaty && t.is_contiguous())\n      v->value = t;",
     "    if ((linear.count(v.get()) || (keep_views && table)) && floaty && t.is_contiguous())\n      v->value = t.to(DType::f32);",
     "Load", "inference loading converts weights instead of keeping the file's dtype"),
]


def sh(cmd):
    return subprocess.run(cmd, shell=True, cwd=ROOT, capture_output=True, text=True)


def main():
    caught = 0
    for path, old, new, tests, what in MUTATIONS:
        f = ROOT / path
        src = f.read_text()
        if src.count(old) != 1:
            print(f"STALE   {path}: the text to mutate is not there once ({what})")
            continue
        f.write_text(src.replace(old, new))
        try:
            b = sh(f"cmake --build {BUILD}")
            if b.returncode != 0:
                print(f"NOBUILD {what}")
                continue
            r = sh(f"ctest --test-dir {BUILD} -R '{tests}' --timeout 300")
            ok = r.returncode != 0
            caught += ok
            print(f"{'caught ' if ok else 'MISSED '} {what}  [{tests}]")
        finally:
            f.write_text(src)
    sh(f"cmake --build {BUILD}")
    print(f"score: {caught}/{len(MUTATIONS)} mutations caught")
    return 0 if caught == len(MUTATIONS) else 1


if __name__ == "__main__":
    sys.exit(main())
