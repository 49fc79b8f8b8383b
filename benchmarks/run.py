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

Peers: numpy dense, ``scipy.sparse.csr_array`` (1 thread) and, when torch is installed,
torch's CSR product (``torch.sparse_csr_tensor``, MKL, torch's threads). For CER and CSER
the run prints the lead of the best of them over the best CSR peer, core-cycles per stored
entry (median time x threads x nominal clock / N) and, at batch 1, the share of the read
bandwidth computed over the format's ``storage("minimal")`` bytes.

Mixed process (``vgg16_fc6`` at batch 1, when torch is installed; ``benchmarks/mixed.py``):
separate subprocesses
with no torch ("clean"), with ``import lowentropy`` before numpy and torch ("first") and
after them ("last"), torch and numpy BLAS work between products; run interleaved
``--mixed-repeats`` times, medians of the runs. ``--no-mixed`` skips it.

Thread pools: ``import lowentropy`` comes first here, so its defaults
(``lowentropy.threads``) reach numpy's OpenBLAS, torch's and numba's OpenMP. Export other
values to compare (``OPENBLAS_THREAD_TIMEOUT=28 GOMP_SPINCOUNT=300000`` are the libraries'
defaults); they are recorded with the machine.
"""

from __future__ import annotations

# lowentropy first: its thread-pool defaults must be set before numpy and torch load.
import lowentropy as le  # isort: skip

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse

from lowentropy.bench import SCIPY, BenchResult, read_bandwidth, time_formats
from lowentropy.synthetic import synthetic_layer
from lowentropy.threads import ENV_DEFAULTS

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


def torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return f"{torch.__version__} ({torch.get_num_threads()} threads)"


def nominal_hz() -> float:
    """The CPU's clock from /proc/cpuinfo (``cpu MHz``), for cycles per entry; NaN if unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1]) * 1e6
    except (OSError, ValueError):
        pass
    return math.nan


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
        "spin_settings": {k: os.environ.get(k) for k in ENV_DEFAULTS},
        "thread_strategy": le.thread_info()["strategy"],
        "torch": torch_version(),
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
        f"numpy {m['numpy']} with {m['blas']}; scipy {m['scipy']}; torch {m['torch']}; "
        f"Python {m['python']}; thread strategy {m['thread_strategy']}; "
        + " ".join(f"{k}={v}" for k, v in m["spin_settings"].items())
    )


# --- torch's CSR product, a peer -----------------------------------------------------------

TORCH = "torch_csr"


class TorchCSR:
    """``W`` as a ``torch.sparse_csr_tensor`` (int32 indices); ``@`` takes and returns numpy
    arrays (shared memory, no copies), computed by torch (MKL) on torch's threads."""

    def __init__(self, W: np.ndarray) -> None:
        import torch

        c = scipy.sparse.csr_array(W)
        self.shape, self.dtype = W.shape, W.dtype
        self.data = c.data
        self.indices = c.indices.astype(np.int32)
        self.indptr = c.indptr.astype(np.int32)
        with warnings.catch_warnings():  # sparse CSR support is flagged beta
            warnings.simplefilter("ignore")
            self._t = torch.sparse_csr_tensor(
                torch.from_numpy(self.indptr), torch.from_numpy(self.indices),
                torch.from_numpy(self.data), size=W.shape)
        self._torch = torch

    def __matmul__(self, X: np.ndarray) -> np.ndarray:
        x = self._torch.from_numpy(np.ascontiguousarray(X))
        if x.ndim == 1:
            return self._torch.mv(self._t, x).numpy()
        return (self._t @ x).numpy()


def peers(W: np.ndarray) -> dict[str, object]:
    """scipy's CSR and, when torch is installed, torch's."""
    out: dict[str, object] = {SCIPY: scipy.sparse.csr_array(W)}
    try:
        import torch  # noqa: F401
    except ImportError:
        return out
    out[TORCH] = TorchCSR(W)
    return out


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
    parser.add_argument("--mixed-repeats", type=int, default=3,
                        help="runs of each import order in the mixed process (0: skip it)")
    parser.add_argument("--mixed-rounds", type=int, default=30,
                        help="interleaved rounds inside one mixed-process run")
    parser.add_argument("--no-mixed", dest="mixed_repeats", action="store_const", const=0,
                        help="skip the mixed process")
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


OURS = ("cer", "cser")


def summary(entry: dict[str, object], result: BenchResult, encoded: dict[str, object],
            bandwidth: float, hz: float, threads: int) -> dict[str, object]:
    """Lead of the best of CER/CSER over the best CSR peer, cycles per entry and the share of
    the read bandwidth over ``storage("minimal")`` bytes."""
    ours = min(OURS, key=result.median)
    peer_names = [p for p in (SCIPY, TORCH) if p in result.timings]
    peer = min(peer_names, key=result.median)
    out: dict[str, object] = {
        "best_ours": ours, "best_peer": peer,
        "lead_over_best_peer": result.median(peer) / result.median(ours),
        "lead_over": {p: result.median(p) / result.median(ours) for p in peer_names},
        "vs_dense": result.median("dense") / result.median(ours),
    }
    for name in OURS:
        t = result.median(name)
        minimal = encoded[name].storage("minimal").total_bytes
        out[f"{name}_cycles_per_entry"] = t * threads * hz / max(int(entry["N"]), 1)
        out[f"{name}_minimal_bytes"] = minimal
        out[f"{name}_bandwidth_share"] = minimal / bandwidth / t
    return out


def summary_line(entry: dict[str, object]) -> str:
    s = entry["summary"]
    leads = ", ".join(f"{s['best_ours']} vs {p} x{v:.2f}" for p, v in s["lead_over"].items())
    return (f"{entry['case']} batch {entry['batch']}: {leads}; vs dense x{s['vs_dense']:.2f}; "
            f"lead over the best peer x{s['lead_over_best_peer']:.2f}; core-cycles/entry "
            f"cer {s['cer_cycles_per_entry']:.2f} cser {s['cser_cycles_per_entry']:.2f}; "
            f"share of read bandwidth over storage('minimal') cer "
            f"{s['cer_bandwidth_share']:.0%} cser {s['cser_bandwidth_share']:.0%}")


def save_arrays(path: Path, encoded: dict[str, object], shape: tuple[int, int]) -> None:
    arrays = {"shape": np.array(shape)}
    for name in OURS:
        arrays.update({f"{name}/{k}": v for k, v in encoded[name].arrays().items()})
    np.savez(path, **arrays)


def run_cases(args: argparse.Namespace, mixed_dir: Path | None):
    """Time every case and batch; returns entries, results, the encodings of CER/CSER and
    each case's statistics."""
    entries: list[dict[str, object]] = []
    results: list[BenchResult] = []
    minimal: list[dict[str, object]] = []
    stats_by_case: dict[str, le.Stats] = {}
    for case_name in args.cases:
        case = CASES[case_name]
        shape = case_shape(case, args.quick, args.scale)
        t0 = time.perf_counter()
        W = synthetic_layer(shape, keep=case.keep, levels=case.levels, seed=0)
        s = le.stats(W)
        stats_by_case[case_name] = s
        encoded = {name: cls.from_dense(W) for name, cls in le.FORMATS.items()}
        encoded.update(peers(W))
        if mixed_dir is not None and case_name == MIXED_CASE:
            save_arrays(mixed_dir / "arrays.npz", encoded, shape)
        print(f"{case_name} {shape[0]}x{shape[1]}: made and encoded in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        for batch in args.batches:
            t0 = time.perf_counter()
            # time_formats checks every product against numpy's W @ X first (AssertionError)
            result = time_formats(W, encoded, batch, budget=args.budget, rtol=RTOL)
            print(f"  batch {batch}: {result.rounds} rounds in {time.perf_counter() - t0:.1f} s",
                  flush=True)
            results.append(result)
            minimal.append({name: encoded[name] for name in OURS})
            entries.append({
                "case": case_name, "about": case.about, "shape": list(shape),
                "dtype": str(W.dtype), "keep": case.keep, "levels": case.levels,
                "K": int(s.K), "H": float(s.H), "p0": float(s.p0), "N": int(s.N),
                "sparsity": float(s.sparsity), "batch": batch, "rounds": result.rounds,
            })
        del W, encoded
    return entries, results, minimal, stats_by_case


# --- the mixed process ------------------------------------------------------------------------

MIXED_CASE = "vgg16_fc6"
MIXED_ORDERS = ("clean", "first", "last")
TORCH_RUNS = ("torch_with_defaults", "torch_without")


def child_environment() -> dict[str, str]:
    """This process's environment without the defaults lowentropy set here, and with this
    lowentropy importable: a child starts as the user's process would."""
    env = {k: v for k, v in os.environ.items()
           if k not in le.thread_info()["set_by_lowentropy"]}
    root = str(Path(le.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _child(order: str, arrays: Path, rounds: int, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, str(HERE / "mixed.py"), order, str(arrays), "--rounds", str(rounds),
         "--batches", "1"],
        capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"mixed.py {order} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _medians(runs: list[dict]) -> dict[str, float]:
    return {k: statistics.median(r["median_ms"][k] for r in runs) for k in runs[0]["median_ms"]}


def run_mixed(arrays: Path, repeats: int, rounds: int) -> dict[str, object]:
    """Every import order ``repeats`` times, interleaved with torch alone with and without
    the defaults exported; medians over the runs."""
    runs: dict[str, list[dict]] = {order: [] for order in (*MIXED_ORDERS, *TORCH_RUNS)}
    env = child_environment()
    for r in range(repeats):
        for order in MIXED_ORDERS:
            runs[order].append(_child(order, arrays, rounds, env))
        runs["torch_with_defaults"].append(_child("torch", arrays, rounds, {**env, **ENV_DEFAULTS}))
        runs["torch_without"].append(_child("torch", arrays, rounds, env))
        print(f"  mixed process: run {r + 1}/{repeats} done", flush=True)
    out: dict[str, object] = {"repeats": repeats, "rounds": rounds, "orders": {}}
    for order in MIXED_ORDERS:
        first = runs[order][0]
        out["orders"][order] = {
            "median_ms": _medians(runs[order]), "strategy": first["strategy"],
            "set_by_lowentropy": first["set_by_lowentropy"],
            "foreign_spinning": first["foreign_spinning"],
        }
    clean = out["orders"]["clean"]["median_ms"]
    for order in ("first", "last"):
        o = out["orders"][order]
        o["ratio_to_clean"] = {k: o["median_ms"][k] / clean[k] for k in clean}
    out["torch_alone"] = {name: _medians(runs[name]) for name in TORCH_RUNS}
    return out


def mixed_lines(mixed: dict[str, object]) -> list[str]:
    orders = mixed["orders"]
    lines = [f"Mixed process ({MIXED_CASE}, batch 1; torch.mm and a numpy BLAS product between "
             f"products; medians of {mixed['repeats']} runs of each order, interleaved):"]
    for order in MIXED_ORDERS:
        o = orders[order]
        ms = o["median_ms"]
        text = ", ".join(f"{k.split('/')[0]} {v:.3f} ms" for k, v in ms.items()
                         if k.endswith("/auto"))
        if order != "clean":
            text += "; vs clean " + ", ".join(f"{k.split('/')[0]} x{v:.2f}"
                                              for k, v in o["ratio_to_clean"].items())
            text += (f"; torch.mm {ms['torch_mm']:.3f} ms, torch MLP batch 1 "
                     f"{ms['torch_mlp_b1']:.3f} ms")
        lines.append(f"  {order:5} (strategy {o['strategy']}): {text}")
    alone = mixed["torch_alone"]
    with_, without = alone["torch_with_defaults"], alone["torch_without"]
    lines.append("  torch alone, with / without the defaults exported: " + ", ".join(
        f"{k} {with_[k]:.3f} / {without[k]:.3f} ms (x{without[k] / with_[k]:.2f})"
        for k in with_))
    return lines


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

    with tempfile.TemporaryDirectory() as tmp:
        do_mixed = (args.mixed_repeats > 0 and MIXED_CASE in args.cases
                    and machine["torch"] is not None)
        entries, results, encoded, stats_by_case = run_cases(args, Path(tmp) if do_mixed else None)
        mixed = None
        if do_mixed:
            print("mixed process ...", flush=True)
            mixed = run_mixed(Path(tmp) / "arrays.npz", args.mixed_repeats, args.mixed_rounds)

    print("measuring read bandwidth ...", flush=True)
    bw_after = read_bandwidth(bw_bytes)
    bandwidth = statistics.median([bw_before, bw_after])
    hz = nominal_hz()
    threads = int(machine["numba_threads"]) if machine["thread_strategy"] == "parallel" else 1

    print()
    print(f"machine: {machine_line(machine)}")
    print(f"read bandwidth: {bandwidth / 1e9:.1f} GB/s (median; before {bw_before / 1e9:.1f}, "
          f"after {bw_after / 1e9:.1f}); 'of limit' = bytes read / bandwidth / median time")
    md = [f"Machine: {machine_line(machine)}", "",
          f"Read bandwidth {bandwidth / 1e9:.1f} GB/s (median of before {bw_before / 1e9:.1f} "
          f"and after {bw_after / 1e9:.1f}). Medians of interleaved rounds; ratios above 1 "
          f"are faster; 'of limit' = bytes read / bandwidth / median time. Synthetic layers."]
    for entry, result, enc in zip(entries, results, encoded, strict=True):
        rows = table_rows(result, bandwidth)
        entry["rows"] = rows
        entry["summary"] = summary(entry, result, enc, bandwidth, hz, threads)
        print()
        print(case_title(entry))
        print(text_table(rows))
        print(summary_line(entry))
        md += ["", f"### {case_title(entry)}", "", markdown_table(rows), "",
               summary_line(entry)]
    sizes = size_rows(stats_by_case)
    print("\nbits / entropy floor (minimal policy, 32-bit values):")
    print(size_table(sizes))
    md += ["", "### Bits / entropy floor (minimal policy, 32-bit values)", "",
           size_table(sizes, markdown=True)]
    if mixed is not None:
        print()
        print("\n".join(mixed_lines(mixed)))
        md += ["", *mixed_lines(mixed)]
    elapsed = time.perf_counter() - started
    print(f"\ntotal {elapsed:.1f} s")

    data = {
        "machine": machine,
        "bandwidth": {"before": bw_before, "after": bw_after, "median": bandwidth},
        "nominal_hz": hz,
        "settings": {"quick": args.quick, "budget_s": args.budget, "scale": args.scale,
                     "rtol": RTOL, "argv": sys.argv[1:] if argv is None else list(argv)},
        "cases": entries,
        "sizes": sizes,
        "mixed": mixed,
        "elapsed_s": elapsed,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(_json_safe(data), indent=1) + "\n")
    (args.out / "results.md").write_text("\n".join(md) + "\n")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    return data


if __name__ == "__main__":
    main()
