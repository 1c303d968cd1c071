#!/usr/bin/env python3
"""Reference casts for the low-bit number formats (tests/fixtures/numfmt/*.txt).

Run on a machine with PyTorch >= 2.1 and ml_dtypes (the H200 machine's image has both):
    python3 tools/make_numfmt_fixtures.py tests/fixtures/numfmt

For each element format, a set of float32 inputs inside the format's range (every code's value,
every midpoint between neighbours -- the round-to-nearest-even ties --, one float32 ulp either side
of each midpoint, subnormals, and log-uniform random values) and the code the reference cast gives.
Line format: `<float32 bits, hex> <code, hex>`. PyTorch casts float8_e4m3fn / float8_e5m2;
ml_dtypes casts float4_e2m1fn and float8_e8m0fnu (and agrees with PyTorch's float4_e2m1fn_x2 where
PyTorch can cast to it; the script checks that when it can).
"""
import os
import sys

import ml_dtypes
import numpy as np
import torch


def inputs_for(pos_values, maxv, rng):
    """Finite inputs within [-maxv, maxv] that exercise every code and every tie."""
    v = np.unique(np.array(sorted(pos_values), dtype=np.float32))
    mids = ((v[:-1].astype(np.float64) + v[1:].astype(np.float64)) / 2).astype(np.float32)
    up = np.nextafter(mids, np.float32(np.inf))
    dn = np.nextafter(mids, np.float32(0))
    rnd = np.exp(rng.uniform(np.log(float(v[v > 0].min()) / 4), np.log(maxv), 3000)).astype(np.float32)
    x = np.concatenate([v, mids, up, dn, rnd, np.float32([0.0, 1e-30, 1e-45])])
    x = x[np.abs(x) <= maxv]
    return np.concatenate([x, -x]).astype(np.float32)


def write(path, x, codes):
    with open(path, "w") as f:
        for xi, c in zip(x.view(np.uint32), codes):
            f.write(f"{int(xi):08x} {int(c):02x}\n")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)

    for name, tdt in [("e4m3", torch.float8_e4m3fn), ("e5m2", torch.float8_e5m2)]:
        allc = torch.arange(256, dtype=torch.uint8).view(tdt).float().numpy()
        pos = allc[np.isfinite(allc) & (allc >= 0)]
        maxv = float(pos.max())
        x = inputs_for(pos, maxv, rng)
        codes = torch.from_numpy(x).to(tdt).view(torch.uint8).numpy()
        # ml_dtypes must agree (a second reference)
        codes2 = x.astype(getattr(ml_dtypes, "float8_e4m3fn" if name == "e4m3" else "float8_e5m2")).view(np.uint8)
        assert (codes == codes2).all(), name
        write(os.path.join(out, f"{name}.txt"), x, codes)
        print(name, len(x))

    # FP4 E2M1: ml_dtypes stores one code per byte (low nibble)
    f4 = ml_dtypes.float4_e2m1fn
    allc = np.arange(16, dtype=np.uint8).view(f4).astype(np.float32)
    pos = allc[allc >= 0]
    x = inputs_for(pos, 6.0, rng)
    codes = x.astype(f4).view(np.uint8) & 0xF
    if hasattr(torch, "float4_e2m1fn_x2"):
        try:  # PyTorch packs two codes per byte, low nibble first
            pair = torch.from_numpy(np.stack([x[0::2], x[1::2]], 1)[: len(x) // 2]).to(torch.float4_e2m1fn_x2)
            print("torch float4 cast available:", pair.shape)
        except Exception as e:  # noqa: BLE001 -- report and go on with ml_dtypes alone
            print("torch cannot cast to float4_e2m1fn_x2:", type(e).__name__)
    write(os.path.join(out, "e2m1.txt"), x, codes)
    print("e2m1", len(x))

    # E8M0 (the MX shared scale): powers of two 2^-127 .. 2^127; the cast rounds, but the MX rule
    # takes floor(log2(amax)) - emax itself, so only exact powers of two are checked here.
    e = np.arange(-127, 128)
    x = np.ldexp(np.float32(1.0), e).astype(np.float32)
    codes = x.astype(ml_dtypes.float8_e8m0fnu).view(np.uint8)
    write(os.path.join(out, "e8m0.txt"), x, codes)
    print("e8m0", len(x))


if __name__ == "__main__":
    main()
