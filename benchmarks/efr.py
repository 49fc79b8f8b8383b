"""EFR on the three layers of SPEC §9: bits ÷ entropy floor, and product speed.

For each of ``benchmarks/run.py``'s cases at full size (synthetic, magnitude-pruned and
quantized; float32): the storage of CER, CSER and EFR (minimal policy, 32-bit values)
divided by the entropy floor ``m·n·H + K·32``, with what EFR would take with every row
sparse or every row dense (the measurements behind its per-row choice); then ``f @ X``
timed interleaved after warm-up (``lowentropy.bench.time_formats``) for numpy dense,
CER, CSER and EFR at batches 1, 8 and 64, as times and as speed-ups over dense.

    python benchmarks/efr.py [--cases vgg16_fc6,alexnet_fc6,conv] [--batches 1,8,64]
                             [--budget SECONDS] [--sizes-only]
"""

from __future__ import annotations

import lowentropy as le  # isort: skip  (first: its thread defaults, before numpy loads)

import argparse
import time

import numpy as np
from run import CASES  # the benchmark's cases

from lowentropy._rowcodes import plan_rows
from lowentropy._values import count_values
from lowentropy.bench import time_formats
from lowentropy.synthetic import synthetic_layer

FORMATS = ("dense", "cer", "cser", "efr")


def sizes(W: np.ndarray, s: le.Stats) -> dict[str, float]:
    """Bits ÷ floor of CER, CSER, EFR, and EFR with all rows sparse or all dense."""
    floor = s.entropy_floor_bits(32)
    out = {name: le.FORMATS[name].storage_for(s).total_bits / floor
           for name in ("cer", "cser", "efr")}
    plan = plan_rows(W, count_values(W))
    fixed = le.EFR.storage_for(s).total_bits - 64 * s.efr.words  # omega, lengths, row_ptr
    for mode, bits in (("all sparse", plan.sparse_bits), ("all dense", plan.dense_bits)):
        out[mode] = (fixed + 64 * int(((bits + 63) // 64).sum())) / floor
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--sizes-only", action="store_true")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",") if b]
    size_rows, speed_rows = [], []
    for name in [c for c in args.cases.split(",") if c]:
        case = CASES[name]
        W = synthetic_layer(case.shape, keep=case.keep, levels=case.levels, seed=0)
        s = le.stats(W)
        size = sizes(W, s)
        size_rows.append((name, s, size))
        print(f"{name} {case.shape[0]}x{case.shape[1]} (K={s.K}, H={s.H:.3f}): "
              + ", ".join(f"{k} {v:.3f}" for k, v in size.items()), flush=True)
        if args.sizes_only:
            continue
        t0 = time.perf_counter()
        encoded = {f: le.FORMATS[f].from_dense(W) for f in FORMATS}
        assert encoded["efr"].storage().total_bits == le.EFR.storage_for(s).total_bits
        print(f"  encoded in {time.perf_counter() - t0:.1f} s", flush=True)
        for batch in batches:
            result = time_formats(W, encoded, batch, budget=args.budget, include_scipy=False)
            speed_rows.append((name, batch, result))
            print(f"  batch {batch}: " + ", ".join(
                f"{f} {result.median(f) * 1e3:.2f} ms (x{result.speedup(f):.2f})"
                for f in FORMATS), flush=True)
        del W, encoded
    print("\n| layer | CER | CSER | EFR | EFR all sparse | EFR all dense |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, _, size in size_rows:
        print(f"| {CASES[name].about} | " + " | ".join(
            f"{size[k]:.2f}" for k in ("cer", "cser", "efr", "all sparse", "all dense")) + " |")
    if speed_rows:
        print("\n| layer | batch | dense ms | CER | CSER | EFR (speed-up over dense) |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, batch, r in speed_rows:
            print(f"| {name} | {batch} | {r.median('dense') * 1e3:.2f} | "
                  + " | ".join(f"x{r.speedup(f):.2f}" for f in ("cer", "cser", "efr")) + " |")


if __name__ == "__main__":
    main()
