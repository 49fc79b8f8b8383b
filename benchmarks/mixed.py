"""One process that mixes torch and numpy BLAS work with lowentropy's products.

Run by ``benchmarks/run.py`` in separate subprocesses, one per import order:

- ``clean``: no torch, no work between products (the reference time);
- ``first``: ``import lowentropy`` before numpy and torch (the library's defaults reach
  every runtime);
- ``last``: numpy and torch first, ``import lowentropy`` last (torch's OpenMP runtime and
  numpy's OpenBLAS spin after their calls; the ``auto`` policy runs the products on one
  thread);
- ``torch``: torch alone, no lowentropy, its tasks back to back: run with and without the
  library's defaults exported, it measures what the defaults cost torch's own work.

In ``first`` and ``last``, every product follows a ``torch.mm`` (256 x 1024 by 1024 x 256)
and a numpy BLAS product (512 x 512 by 512 x 64), as in a notebook holding a torch model.
The products, and torch's own work (the ``torch.mm`` and a batch-1 forward pass of a
3-layer MLP, 1024 wide), are timed interleaved; medians are printed as one JSON line.

    python benchmarks/mixed.py ORDER ARRAYS.npz [--batches 1,8] [--rounds 40]
                               [--policies auto,parallel,serial]

``ARRAYS.npz`` holds ``shape`` and the arrays of a CER (``cer/NAME``) and a CSER
(``cser/NAME``) matrix, as ``benchmarks/run.py`` writes it.
"""

from __future__ import annotations

import importlib
import sys

#: What each order imports, in that order, before anything else.
IMPORTS = {
    "clean": ("lowentropy", "numpy"),
    "first": ("lowentropy", "numpy", "torch"),
    "last": ("numpy", "torch", "lowentropy"),
    "torch": ("numpy", "torch"),
}
ORDERS = tuple(IMPORTS)

if __name__ == "__main__":
    _order = sys.argv[1] if len(sys.argv) > 1 else ""
    if _order not in IMPORTS:
        sys.exit(f"usage: mixed.py {{{','.join(ORDERS)}}} ARRAYS.npz [options]")
    for _module in IMPORTS[_order]:
        importlib.import_module(_module)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402


def load_formats(path: str) -> dict[str, object]:
    import numpy as np

    import lowentropy as le

    data = np.load(path)
    shape = tuple(int(s) for s in data["shape"])
    out = {}
    for name in ("cer", "cser"):
        arrays = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(name + "/")}
        out[name] = le.get_format(name)(shape, arrays["omega"].dtype, **arrays)
    return out


def foreign_work(order: str):
    """The work between products, and torch's own timed tasks."""
    import numpy as np

    if order == "clean":
        return (lambda: None), {}
    import torch

    rng = np.random.default_rng(1)
    ta, tb = torch.randn(256, 1024), torch.randn(1024, 256)
    na, nb = rng.standard_normal((512, 512)), rng.standard_normal((512, 64))
    mlp = torch.nn.Sequential(torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
                              torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
                              torch.nn.Linear(1024, 1024))
    v = torch.randn(1, 1024)

    def between():
        torch.mm(ta, tb)
        na @ nb

    def forward():
        with torch.no_grad():
            mlp(v)

    return between, {"torch_mm": lambda: torch.mm(ta, tb), "torch_mlp_b1": forward}


def run(order: str, path: str, batches: list[int], rounds: int, policies: list[str]) -> dict:
    if order == "torch":
        return torch_alone(rounds)
    import numba
    import numpy as np

    import lowentropy as le

    formats = load_formats(path)
    between, torch_tasks = foreign_work(order)
    n = next(iter(formats.values())).shape[1]
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {}
    candidates = {}
    for b in batches:
        X = rng.standard_normal((n,) if b == 1 else (n, b)).astype(np.float32)
        for policy in policies:
            for name, f in formats.items():
                candidates[f"{name}/B{b}/{policy}"] = (policy, lambda f=f, X=X: f @ X)
    for policy, fn in candidates.values():  # warm-up: compile or load every kernel
        le.set_thread_policy(policy)
        fn()
    for r in range(rounds):
        keys = list(candidates)
        keys = keys[r % len(keys):] + keys[:r % len(keys)]
        for key in keys:
            policy, fn = candidates[key]
            le.set_thread_policy(policy)
            for _ in range(3):
                between()
                start = time.perf_counter()
                fn()
                times.setdefault(key, []).append(time.perf_counter() - start)
        for key, fn in torch_tasks.items():
            for _ in range(5):
                start = time.perf_counter()
                fn()
                times.setdefault(key, []).append(time.perf_counter() - start)
    le.set_thread_policy("auto")
    info = le.thread_info()
    return {
        "order": order,
        "median_ms": {k: statistics.median(v) * 1e3 for k, v in times.items()},
        "strategy": info["strategy"],
        "set_by_lowentropy": info["set_by_lowentropy"],
        "foreign_spinning": info["foreign_spinning"],
        "numba_threads": numba.get_num_threads(),
    }


def torch_alone(rounds: int) -> dict:
    """torch's tasks back to back, without lowentropy."""
    import os

    _, tasks = foreign_work("torch")
    times: dict[str, list[float]] = {}
    for fn in tasks.values():
        fn()
    for _ in range(rounds):
        for key, fn in tasks.items():
            for _ in range(5):
                start = time.perf_counter()
                fn()
                times.setdefault(key, []).append(time.perf_counter() - start)
    env = {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                                          "OPENBLAS_THREAD_TIMEOUT")}
    return {"order": "torch", "median_ms": {k: statistics.median(v) * 1e3
                                            for k, v in times.items()}, "environment": env}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("order", choices=ORDERS)
    parser.add_argument("arrays")
    parser.add_argument("--batches", default="1")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--policies", default="auto")
    args = parser.parse_args(argv)
    result = run(args.order, args.arrays, [int(b) for b in args.batches.split(",")],
                 args.rounds, args.policies.split(","))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
