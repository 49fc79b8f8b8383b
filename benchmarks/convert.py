"""Conversion speed: dense matrix to every registered format, next to scipy's CSR.

A 4096 x 9216 matrix (AlexNet fc6's shape; 91 % pruned, 32 shared values, synthetic)
is converted to every format in FORMATS and by ``scipy.sparse.csr_matrix(W)``, in one
process, interleaved, after warm-up. Prints the median of each and its ratio to scipy
(above 1: faster than scipy).

    python benchmarks/convert.py [--quick]
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import scipy.sparse

import lowentropy as le
from lowentropy.bench import interleaved
from lowentropy.synthetic import synthetic_layer


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller matrix, fewer rounds")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    shape = (1024, 2304) if args.quick else (4096, 9216)
    rounds = 3 if args.quick else args.rounds
    W = synthetic_layer(shape, keep=0.09, levels=32, seed=0)
    s = le.stats(W)
    print(f"matrix {shape[0]}x{shape[1]} float32, K={s.K}, H={s.H:.3f} bits, "
          f"p0={s.p0:.3f} (synthetic) on {platform.processor() or platform.machine()}")
    candidates = {"scipy.sparse.csr_matrix": lambda: scipy.sparse.csr_matrix(W)}
    for name, cls in le.FORMATS.items():
        candidates[f"{name}.from_dense"] = lambda cls=cls: cls.from_dense(W)
    timings = interleaved(candidates, rounds=rounds, warmup=1)
    scipy_timing = timings["scipy.sparse.csr_matrix"]
    print(f"{'conversion':<26}{'median ms':>10}{'vs scipy':>10}")
    ratios = {}
    for name, t in timings.items():
        ratios[name] = t.ratio_to(scipy_timing)
        print(f"{name:<26}{t.median * 1e3:>10.1f}{ratios[name]:>9.2f}x")
    return ratios


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
