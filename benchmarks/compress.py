"""Pruning and quantization speed, against one dense matrix-vector product.

On a 4096 x 9216 float32 Gaussian matrix (AlexNet fc6's shape, 37.7 M weights) this
times, in one process, interleaved, after warm-up: ``W @ x`` (numpy/OpenBLAS), ``W.copy()``
(what any function returning a new array of that size pays at least), ``le.prune(W,
0.91)``, ``le.quantize(W, "uniform", bits=5)``, ``le.quantize(W, "kmeans", clusters=32)``
on the dense matrix and on the 91 % pruned one (the Deep Compression pipeline), and
``le.quantization_error``. Prints each median and its ratio to the matrix-vector product
(the budget after a slider change is 40 dense products for statistics and storage), and
the fastest round of each next to the fastest product (less sensitive to other load on a
shared machine).

``--pipeline`` times instead what a slider move in the layer explorer computes: pruning,
quantization, statistics and quantization error, step by step and in total, on two paths
(k-means 32 after 90 % pruning; uniform 5 bits unpruned), through floats (``prune`` →
``quantize`` → ``stats`` → ``quantization_error``) and through codes
(``quantize(prune=, return_codes=True)``, whose error comes from the assignment pass, →
``stats`` of the codes). With a library without codes only the float path runs.

    python benchmarks/compress.py [--quick] [--rounds N] [--pipeline]
"""

from __future__ import annotations

import argparse
import platform

import numba
import numpy as np

import lowentropy as le
from lowentropy.bench import interleaved
from lowentropy.compress import prune, quantization_error, quantize

TARGETS = {"prune(0.91)": 10.0, "uniform(5)": 5.0, "kmeans(32)": 15.0}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller matrix, fewer rounds")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--pipeline", action="store_true",
                        help="prune + quantize + stats + error, floats against codes")
    args = parser.parse_args(argv)
    shape = (1024, 2304) if args.quick else (4096, 9216)
    rounds = 3 if args.quick else args.rounds
    rng = np.random.default_rng(0)
    W = rng.standard_normal(shape, dtype=np.float32)
    x = rng.standard_normal(shape[1], dtype=np.float32)
    if args.pipeline:
        return pipeline(W, rounds)
    P = prune(W, 0.91)
    Q = quantize(W, "kmeans", clusters=32)
    print(f"matrix {shape[0]}x{shape[1]} float32 Gaussian ({W.size / 1e6:.1f} M weights), "
          f"{numba.get_num_threads()} numba threads, "
          f"{platform.processor() or platform.machine()}")
    candidates = {
        "W @ x": lambda: W @ x,
        "W.copy()": W.copy,
        "prune(0.91)": lambda: prune(W, 0.91),
        "uniform(5)": lambda: quantize(W, "uniform", bits=5),
        "kmeans(32)": lambda: quantize(W, "kmeans", clusters=32),
        "kmeans(32) of pruned": lambda: quantize(P, "kmeans", clusters=32),
        "quantization_error": lambda: quantization_error(W, Q),
    }
    timings = interleaved(candidates, rounds=rounds, warmup=2)
    base = timings["W @ x"]
    print(f"{'operation':<24}{'median ms':>10}{'x matvec':>10}{'target':>8}"
          f"{'min ms':>9}{'x min':>7}")
    ratios = {}
    for name, t in timings.items():
        ratios[name] = t.median / base.median
        target = f"<={TARGETS[name]:g}" if name in TARGETS else ""
        low = min(t.times)
        print(f"{name:<24}{t.median * 1e3:>10.1f}{ratios[name]:>10.1f}{target:>8}"
              f"{low * 1e3:>9.1f}{low / min(base.times):>7.1f}")
    return ratios


PATHS = {"kmeans(32), 90% pruned": ("kmeans", {"clusters": 32}, 0.9),
         "uniform(5), unpruned": ("uniform", {"bits": 5}, 0.0)}


def _float_steps(W: np.ndarray, method: str, kw: dict, fraction: float) -> dict:
    P = prune(W, fraction) if fraction else W
    Q = quantize(P, method, **kw)
    steps = {"quantize": lambda: quantize(P, method, **kw), "stats": lambda: le.stats(Q),
             "error": lambda: quantization_error(W, Q)}
    if fraction:
        steps = {"prune": lambda: prune(W, fraction), **steps}

    def total():
        Wq = quantize(prune(W, fraction) if fraction else W, method, **kw)
        return le.stats(Wq), quantization_error(W, Wq)

    return {**steps, "total": total}


def _code_steps(W: np.ndarray, method: str, kw: dict, fraction: float) -> dict:
    q = quantize(W, method, prune=fraction, return_codes=True, **kw)

    def total():
        c = quantize(W, method, prune=fraction, return_codes=True, **kw)
        return le.stats(c), c.error

    return {"prune+quantize+error": lambda: quantize(W, method, prune=fraction,
                                                     return_codes=True, **kw),
            "stats": lambda: le.stats(q), "total": total}


def pipeline(W: np.ndarray, rounds: int) -> dict[str, float]:
    """Median milliseconds of every step of both paths (see the module's description)."""
    codes = hasattr(le, "Quantized")
    candidates = {"read pass (W.sum())": W.sum}
    for label, (method, kw, fraction) in PATHS.items():
        for step, fn in _float_steps(W, method, kw, fraction).items():
            candidates[f"{label} | floats | {step}"] = fn
        if codes:
            for step, fn in _code_steps(W, method, kw, fraction).items():
                candidates[f"{label} | codes | {step}"] = fn
    print(f"matrix {W.shape[0]}x{W.shape[1]} float32 Gaussian ({W.size / 1e6:.1f} M weights), "
          f"{numba.get_num_threads()} numba threads, {rounds} interleaved rounds")
    timings = interleaved(candidates, rounds=rounds, warmup=1)
    read = timings["read pass (W.sum())"].median
    print(f"{'step':<58}{'median ms':>10}{'min ms':>9}{'x read':>8}")
    medians = {}
    for name, t in timings.items():
        medians[name] = t.median * 1e3
        print(f"{name:<58}{t.median * 1e3:>10.1f}{min(t.times) * 1e3:>9.1f}"
              f"{t.median / read:>8.1f}")
    return medians


if __name__ == "__main__":
    main()
