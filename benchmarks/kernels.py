"""What bounds the CER/CSER product kernels: core-cycles per stored entry, on one thread.

For the VGG-16 fc6 layer (4096 x 25088, 4 % kept, 32 values; ``--rows`` fewer for a quick
look), times the one-thread kernels with the CPU time of the calling thread (time spent
descheduled on a shared machine is not counted) and converts it to cycles at the nominal
clock (``cpu MHz`` of /proc/cpuinfo):

- ``as stored``: the product as the library runs it;
- ``x in L1``: the same arrays with every column index taken modulo 512, so that the
  gathered rows of ``X`` (512 x B) stay in the first-level cache: what the instructions
  cost when no gather misses the cache. The gap between the two is the price of the
  gathers' cache misses.
- ``gather alone`` (batch 1): ``sum(x[col_idx])`` over CSER's stored column indices with
  eight accumulators, as stored and with ``x`` in L1: the least work any product that
  reads ``x`` at its stored entries does (a load of the index, a load of ``x``, an
  addition), without the format's decoding or its multiplications. Its time spread over
  the machine's cores bounds every such kernel's batch-1 time from below.

    python benchmarks/kernels.py [--batches 1,8,64] [--repeats 5] [--rows 4096]

Prints cycles per stored entry and per entry and column of ``X``; medians of interleaved
repeats.
"""

from __future__ import annotations

# lowentropy first: its thread-pool defaults must be set before numpy loads.
import lowentropy as le  # isort: skip

import argparse
import os
import statistics
import time

import numba
import numpy as np

from lowentropy.synthetic import synthetic_layer


def nominal_hz() -> float:
    for line in open("/proc/cpuinfo").read().splitlines():
        if line.startswith("cpu MHz"):
            return float(line.split(":", 1)[1]) * 1e6
    raise RuntimeError("no 'cpu MHz' in /proc/cpuinfo")


def in_l1(f, modulo: int = 512):
    """The same format with every column index taken modulo ``modulo`` (groups stay
    ascending only where they were; the kernels do not need it)."""
    arrays = {k: np.array(v) for k, v in f.arrays().items()}
    arrays["col_idx"] = (arrays["col_idx"] % modulo).astype(arrays["col_idx"].dtype)
    return type(f)._trusted(f.shape, f.dtype, **arrays)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def gather_alone(cols: np.ndarray, x: np.ndarray) -> float:
    """``sum(x[cols])`` in eight float32 accumulators (one index load, one ``x`` load and
    one addition per entry)."""
    acc = np.zeros(8, np.float32)
    n = cols.size
    full = n - n % 8
    for i in range(0, full, 8):
        for k in range(8):
            acc[k] += x[cols[i + k]]
    for i in range(full, n):
        acc[0] += x[cols[i]]
    return float(acc.sum())


def cpu_seconds(fn, calls: int) -> float:
    start = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - start) / calls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=4096)
    args = parser.parse_args(argv)
    hz = nominal_hz()
    W = synthetic_layer((args.rows, 25088), keep=0.04, levels=32, seed=0)
    formats = {name: le.get_format(name).from_dense(W) for name in ("cer", "cser")}
    del W
    variants = {}
    for name, f in formats.items():
        variants[f"{name} as stored"] = f
        variants[f"{name} x in L1"] = in_l1(f)
    N = formats["cser"].N
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"{args.rows} x 25088, N = {N:,} stored entries; one thread; cycles at "
          f"{hz / 1e9:.2f} GHz (nominal) from thread CPU time; medians of {args.repeats}")
    for b in (int(t) for t in args.batches.split(",")):
        X = rng.standard_normal((25088,) if b == 1 else (25088, b)).astype(np.float32)
        calls = max(1, 8 // b)
        times: dict[str, list[float]] = {k: [] for k in variants}
        for f in variants.values():
            f @ X
        for _ in range(args.repeats):
            for key, f in variants.items():
                times[key].append(cpu_seconds(lambda f=f, X=X: f @ X, calls))
        if b == 1:
            cols = np.asarray(formats["cser"].arrays()["col_idx"])
            for key, c in (("gather alone", cols), ("gather, x in L1", cols % 512)):
                gather_alone(c, X)
                times[key] = [cpu_seconds(lambda c=c, X=X: gather_alone(c, X), calls)
                              for _ in range(args.repeats)]
        for key, ts in times.items():
            cycles = statistics.median(ts) * hz / N
            print(f"  B={b:<3} {key:16} {statistics.median(ts) * 1e3:8.2f} ms  "
                  f"{cycles:6.2f} cycles/entry  {cycles / b:6.3f} per entry and column")
        if b == 1:
            cores = len(os.sched_getaffinity(0))
            floor = statistics.median(times["gather alone"]) / cores * 4096 / args.rows
            print(f"  the gather alone on {cores} cores, VGG-16 fc6 at full size: "
                  f"{floor * 1e3:.2f} ms, the least any batch-1 product reading x at "
                  f"its stored entries takes here")


if __name__ == "__main__":
    main()
