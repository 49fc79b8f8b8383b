"""Product speed: every format next to numpy dense and scipy CSR, on layer-shaped matrices.

In one process, interleaved and after warm-up (``lowentropy.bench.time_formats``), times
``f @ X`` for every format in ``lowentropy.FORMATS`` (``dense`` is numpy's ``matmul``,
OpenBLAS) and ``scipy.sparse.csr_array`` on synthetic compressed layers (see
``lowentropy.synthetic``):

- ``vgg16_fc6``:   4096 x 25088, 4 % of the weights kept, 32 shared values;
- ``alexnet_fc6``: 4096 x 9216,  9 % kept, 32 shared values;
- ``conv``:        512 x 4608 (a 3x3 convolution over 512 channels as a matrix), nothing
  pruned, 16 levels: not sparse, but low entropy;
- ``large``:       4096 x 8192, nothing pruned, 16 levels (the codebook formats' case);

each with batches of 1, 8 and 64 input vectors. A size table gives every format's bits
(``minimal`` policy, 32-bit values) divided by the layer's entropy floor
``m·n·H + K·32`` (SPEC §4), from the statistics alone; ``--sizes`` prints only that
table (seconds, no timing). Before timing, every format's product is
checked against numpy's ``W @ X`` (within 1e-3 of ``max |W @ X|``; a failure aborts the
run: a kernel regression). The memory read bandwidth is measured before and after the
cases; the median is the bandwidth of the "share of the limit" column (bytes read ÷
bandwidth ÷ measured time).

    python benchmarks/run.py [--quick] [--out benchmarks/results] [--cases conv,alexnet_fc6]
                             [--batches 1,8] [--budget SECONDS] [--sizes]

``--quick`` divides the rows by 4 and shortens the timing (under a minute). Results are
printed and written to ``OUT/results.json`` and ``OUT/results.md``.

Thread pools that spin: after a call, OpenBLAS's threads spin for about 2**28 cycles and
numba's OpenMP threads (libgomp) for 300000 rounds before they sleep. Interleaved on a
machine with few cores, the spinning pool takes the cores the next candidate needs: here
numba kernels ran up to 8x and numpy's product up to 1.7x slower than alone. This script
sets ``OPENBLAS_THREAD_TIMEOUT=18`` (about 0.1 ms) and ``GOMP_SPINCOUNT=10000`` before
numpy and numba load, unless they are already set; with them every candidate ran as fast
interleaved as alone. Export other values to compare (``OPENBLAS_THREAD_TIMEOUT=28
GOMP_SPINCOUNT=300000`` are the libraries' defaults). The values are recorded with the
machine.
"""

from __future__ import annotations

import os

# Before numpy loads OpenBLAS and numba loads libgomp (see the module docstring).
SPIN_SETTINGS = {"OPENBLAS_THREAD_TIMEOUT": "18", "GOMP_SPINCOUNT": "10000"}
for _key, _value in SPIN_SETTINGS.items():
    os.environ.setdefault(_key, _value)

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse  # noqa: E402

import lowentropy as le  # noqa: E402
from lowentropy.bench import SCIPY, BenchResult, read_bandwidth, time_formats  # noqa: E402
from lowentropy.synthetic import synthetic_layer  # noqa: E402

HERE = Path(__file__).resolve().parent
RTOL = 1e-3


@dataclass(frozen=True)
class Case:
    name: str
    shape: tuple[int, int]
    keep: float
    levels: int
    about: str


CASES = {
    c.name: c
    for c in (
        Case("vgg16_fc6", (4096, 25088), 0.04, 32, "VGG-16 fc6, 4 % kept, 32 values"),
        Case("alexnet_fc6", (4096, 9216), 0.09, 32, "AlexNet fc6, 9 % kept, 32 values"),
        Case("conv", (512, 4608), 1.0, 16, "3x3 conv 512->512 as a matrix, not pruned, 16 levels"),
        Case("large", (4096, 8192), 1.0, 16, "4096x8192, not pruned, 16 levels"),
    )
}
BATCHES = (1, 8, 64)


# --- machine ------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> str:
    """The BLAS numpy uses: from threadpoolctl when installed, else numpy's build config."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        pass
    else:
        blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if blas:
            return ", ".join(
                f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
                for p in blas
            )
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        text = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # the layout of the configuration is numpy's business
        text = "unknown BLAS"
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    return f"{text} ({threads or 'default'} threads)"


def machine_info() -> dict[str, object]:
    import numba

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        layer = "not yet chosen"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": layer,
        "blas": blas_info(),
        "spin_settings": {k: os.environ.get(k) for k in SPIN_SETTINGS},
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "lowentropy": le.__version__,
    }


def machine_line(m: dict[str, object]) -> str:
    return (
        f"{m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable); numba "
        f"{m['numba']} {m['numba_threads']} threads ({m['numba_threading_layer']}); "
        f"numpy {m['numpy']} with {m['blas']}; scipy {m['scipy']}; Python {m['python']}; "
        + " ".join(f"{k}={v}" for k, v in m["spin_settings"].items())
    )


# --- tables ---------------------------------------------------------------------------------

COLUMNS = ("format", "median ms", "vs dense", "vs scipy", "MB read", "GB/s", "of limit")


def table_rows(result: BenchResult, bandwidth: float) -> list[dict[str, object]]:
    rows = result.rows(bandwidth)
    for row in rows:
        row["times_s"] = list(result.timings[row["name"]].times)
    return rows


def cells(row: dict[str, object]) -> list[str]:
    return [
        str(row["name"]),
        f"{row['median_s'] * 1e3:.3f}",
        f"{row['speedup_vs_dense']:.2f}x",
        f"{row['speedup_vs_scipy']:.2f}x",
        f"{row['bytes_read'] / 1e6:.2f}",
        f"{row['GB_per_s']:.1f}",
        f"{row['limit_share']:.0%}",
    ]


def _line(texts: list[str] | tuple[str, ...]) -> str:
    widths = (10, 11, 9, 9, 10, 7, 9)
    return "".join(
        f"{t:<{w}}" if i == 0 else f"{t:>{w}}"
        for i, (t, w) in enumerate(zip(texts, widths, strict=True))
    )


def text_table(rows: list[dict[str, object]]) -> str:
    return "\n".join([_line(COLUMNS), *(_line(cells(row)) for row in rows)])


def markdown_table(rows: list[dict[str, object]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---" + "|---:" * (len(COLUMNS) - 1) + "|"]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def case_title(entry: dict[str, object]) -> str:
    m, n = entry["shape"]
    return (
        f"{entry['case']} {m}x{n} {entry['dtype']} (keep {entry['keep']:g}, "
        f"{entry['levels']} levels; K={entry['K']}, H={entry['H']:.3f} bits, "
        f"p0={entry['p0']:.3f}), batch {entry['batch']}, {entry['rounds']} rounds"
    )


def size_rows(stats_by_case: dict[str, le.Stats]) -> list[dict[str, object]]:
    """Bits of every format divided by the entropy floor, one row per case (minimal
    policy, 32-bit values)."""
    rows = []
    for case_name, s in stats_by_case.items():
        floor = s.entropy_floor_bits(32)
        row: dict[str, object] = {"case": case_name, "H": s.H, "K": s.K, "p0": s.p0,
                                  "floor_bits": floor}
        for name, cls in le.FORMATS.items():
            row[name] = cls.storage_for(s).total_bits / floor
        rows.append(row)
    return rows


def size_table(rows: list[dict[str, object]], markdown: bool = False) -> str:
    names = list(le.FORMATS)
    head = ["layer", "H", *names]
    lines = []
    for row in rows:
        lines.append([str(row["case"]), f"{row['H']:.3f}",
                      *(f"{row[name]:.2f}" for name in names)])
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
        return "\n".join(out + ["| " + " | ".join(cells) + " |" for cells in lines])
    width = max(12, *(len(str(r["case"])) + 2 for r in rows))
    fmt = lambda cells: f"{cells[0]:<{width}}" + "".join(f"{c:>9}" for c in cells[1:])  # noqa: E731
    return "\n".join([fmt(head), *map(fmt, lines)])


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


# --- the run ----------------------------------------------------------------------------------


def _names(text: str) -> list[str]:
    return [t for t in (s.strip() for s in text.split(",")) if t]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="rows divided by 4, shorter timing (under a minute)")
    parser.add_argument("--out", type=Path, default=HERE / "results",
                        help="folder for results.json and results.md (created)")
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated subset of {', '.join(CASES)}")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)),
                        help="comma-separated batch sizes (default 1,8,64)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds of timed calls per case and batch (default 2, quick 0.5)")
    parser.add_argument("--sizes", action="store_true",
                        help="only the size table (bits / entropy floor), no timing")
    parser.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.cases = _names(args.cases)
    unknown = [c for c in args.cases if c not in CASES]
    if unknown or not args.cases:
        parser.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    try:
        args.batches = [int(b) for b in _names(args.batches)]
    except ValueError:
        parser.error(f"--batches must be comma-separated integers, got {args.batches!r}")
    if not args.batches or min(args.batches) < 1:
        parser.error("--batches must be positive integers")
    if not args.scale > 0:
        parser.error("--scale must be positive")
    if args.budget is None:
        args.budget = 0.5 if args.quick else 2.0
    return args


def case_shape(case: Case, quick: bool, scale: float) -> tuple[int, int]:
    m, n = case.shape
    if quick:
        m //= 4
    return max(1, round(m * scale)), max(1, round(n * scale))


def sizes_only(args: argparse.Namespace) -> dict[str, object]:
    stats = {}
    for case_name in args.cases:
        case = CASES[case_name]
        W = synthetic_layer(case_shape(case, args.quick, args.scale), keep=case.keep,
                            levels=case.levels, seed=0)
        stats[case_name] = le.stats(W)
        del W
    rows = size_rows(stats)
    print("bits / entropy floor (minimal policy, 32-bit values):")
    print(size_table(rows))
    return {"sizes": rows}


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    if args.sizes:
        return sizes_only(args)
    started = time.perf_counter()
    bw_bytes = (64 if args.scale < 1 else 256) * 2**20
    print("measuring read bandwidth ...", flush=True)
    bw_before = read_bandwidth(bw_bytes)
    machine = machine_info()
    print(f"machine: {machine_line(machine)}", flush=True)
    print(f"read bandwidth (before): {bw_before / 1e9:.1f} GB/s", flush=True)

    entries: list[dict[str, object]] = []
    results: list[BenchResult] = []
    stats_by_case: dict[str, le.Stats] = {}
    for case_name in args.cases:
        case = CASES[case_name]
        shape = case_shape(case, args.quick, args.scale)
        t0 = time.perf_counter()
        W = synthetic_layer(shape, keep=case.keep, levels=case.levels, seed=0)
        s = le.stats(W)
        stats_by_case[case_name] = s
        encoded = {name: cls.from_dense(W) for name, cls in le.FORMATS.items()}
        encoded[SCIPY] = scipy.sparse.csr_array(W)
        print(f"{case_name} {shape[0]}x{shape[1]}: made and encoded in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        for batch in args.batches:
            t0 = time.perf_counter()
            # time_formats checks every product against numpy's W @ X first (AssertionError)
            result = time_formats(W, encoded, batch, budget=args.budget, rtol=RTOL)
            print(f"  batch {batch}: {result.rounds} rounds in {time.perf_counter() - t0:.1f} s",
                  flush=True)
            results.append(result)
            entries.append({
                "case": case_name, "about": case.about, "shape": list(shape),
                "dtype": str(W.dtype), "keep": case.keep, "levels": case.levels,
                "K": int(s.K), "H": float(s.H), "p0": float(s.p0), "N": int(s.N),
                "sparsity": float(s.sparsity), "batch": batch, "rounds": result.rounds,
            })
        del W, encoded

    print("measuring read bandwidth ...", flush=True)
    bw_after = read_bandwidth(bw_bytes)
    bandwidth = statistics.median([bw_before, bw_after])

    print()
    print(f"machine: {machine_line(machine)}")
    print(f"read bandwidth: {bandwidth / 1e9:.1f} GB/s (median; before {bw_before / 1e9:.1f}, "
          f"after {bw_after / 1e9:.1f}); 'of limit' = bytes read / bandwidth / median time")
    md = [f"Machine: {machine_line(machine)}", "",
          f"Read bandwidth {bandwidth / 1e9:.1f} GB/s (median of before {bw_before / 1e9:.1f} "
          f"and after {bw_after / 1e9:.1f}). Medians of interleaved rounds; ratios above 1 "
          f"are faster; 'of limit' = bytes read / bandwidth / median time. Synthetic layers."]
    for entry, result in zip(entries, results, strict=True):
        rows = table_rows(result, bandwidth)
        entry["rows"] = rows
        print()
        print(case_title(entry))
        print(text_table(rows))
        md += ["", f"### {case_title(entry)}", "", markdown_table(rows)]
    sizes = size_rows(stats_by_case)
    print("\nbits / entropy floor (minimal policy, 32-bit values):")
    print(size_table(sizes))
    md += ["", "### Bits / entropy floor (minimal policy, 32-bit values)", "",
           size_table(sizes, markdown=True)]
    elapsed = time.perf_counter() - started
    print(f"\ntotal {elapsed:.1f} s")

    data = {
        "machine": machine,
        "bandwidth": {"before": bw_before, "after": bw_after, "median": bandwidth},
        "settings": {"quick": args.quick, "budget_s": args.budget, "scale": args.scale,
                     "rtol": RTOL, "argv": sys.argv[1:] if argv is None else list(argv)},
        "cases": entries,
        "sizes": sizes,
        "elapsed_s": elapsed,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(_json_safe(data), indent=1) + "\n")
    (args.out / "results.md").write_text("\n".join(md) + "\n")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    return data


if __name__ == "__main__":
    main()
