"""Sweep throughput with 2 local workers against 1, and the time to report a 1.5 GB
sharded checkpoint.

    python benchmarks/sweep.py [--repeats 3] [--layers 24] [--keep DIR]

A checkpoint of ``--layers`` float32 layers of 4096 x 4096 (64 MB each, 4 shards) is
written to a temporary folder. Then, interleaved and repeated:

- throughput: ``sweep(checkpoint, prune=[0.5, 0.9], bits=[4, 8])`` over the first 16
  layers (``--sweep-layers``), in-process on one numba thread (``workers=1``), in-process
  on two, and on 2 worker processes of one thread each (``workers=2``, process start-up
  included);
- the time of ``lowentropy report CHECKPOINT --prune 0.5 --bits 4`` (every layer, one
  setting, the pages of each layer released after use) and of the same single-setting
  sweep, with the peak resident memory of each.

Prints medians and ratios. Machines here are shared: read ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

_CHILD = """
import sys, time, json
import lowentropy, lowentropy.sweep, numba
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
mode, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
from lowentropy.sweep import sweep
from lowentropy.io.sharded import open_checkpoint
import lowentropy as le
net = le.load_network(path)
small = le.Network(net.name, net.layers[:n], net.source)
t = time.perf_counter()
if mode == "sweep1":
    numba.set_num_threads(1)
    sweep(small, prune=[0.5, 0.9], bits=[4, 8], workers=1, progress=False)
elif mode == "sweep1x2":
    sweep(small, prune=[0.5, 0.9], bits=[4, 8], workers=1, progress=False)
elif mode == "sweep2":
    sweep(small, prune=[0.5, 0.9], bits=[4, 8], workers=2, progress=False)
elif mode == "report":
    from lowentropy.__main__ import main
    import contextlib, io
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["report", path, "--prune", "0.5", "--bits", "4", "--format", "csv"]) == 0
elif mode == "sweep_all":
    sweep(path, prune=[0.5], bits=[4], workers=1, progress=False)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": peak()}))
"""


def write_checkpoint(folder: str, n_layers: int, shards: int = 4) -> float:
    """``n_layers`` float32 4096 x 4096 layers in ``shards`` files plus the index; MB."""
    rng = np.random.default_rng(0)
    names = [f"model.layers.{i}.mlp.weight" for i in range(n_layers)]
    weight_map = {}
    for k, idx in enumerate(np.array_split(np.arange(n_layers), shards)):
        file = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        nbytes = 4096 * 4096 * 4
        head = {names[i]: {"dtype": "F32", "shape": [4096, 4096],
                           "data_offsets": [j * nbytes, (j + 1) * nbytes]}
                for j, i in enumerate(idx)}
        raw = json.dumps(head).encode()
        raw += b" " * (-len(raw) % 8)
        with open(os.path.join(folder, file), "wb") as fp:
            fp.write(struct.pack("<Q", len(raw)) + raw)
            for i in idx:
                fp.write(rng.standard_normal((4096, 4096), dtype=np.float32).tobytes())
                weight_map[names[i]] = file
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as fp:
        json.dump({"weight_map": weight_map}, fp)
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)) / 2**20


def run(mode: str, path: str, n: int) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, mode, path, str(n)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--sweep-layers", type=int, default=16)
    parser.add_argument("--keep", help="write the checkpoint here and keep it")
    args = parser.parse_args()
    folder = args.keep or tempfile.mkdtemp(prefix="lowentropy-bench-")
    os.makedirs(folder, exist_ok=True)
    t = time.perf_counter()
    size = write_checkpoint(folder, args.layers)
    print(f"checkpoint: {args.layers} x 4096 x 4096 float32, {size:.0f} MB, written in "
          f"{time.perf_counter() - t:.1f} s")
    modes = ["sweep1", "sweep2", "sweep1x2", "report", "sweep_all"]
    results: dict[str, list[dict]] = {m: [] for m in modes}
    for r in range(args.repeats):
        for m in modes[r % len(modes):] + modes[:r % len(modes)]:  # rotate the order
            results[m].append(run(m, folder, args.sweep_layers))
    med = {m: statistics.median(x["seconds"] for x in v) for m, v in results.items()}
    peak = {m: max(x["peak_mb"] for x in v) for m, v in results.items()}
    units = args.sweep_layers * 4
    print(f"\nsweep of {args.sweep_layers} layers x 4 settings ({units} layer settings), "
          f"median of {args.repeats}:")
    for m, label in (("sweep1", "1 worker, 1 thread "), ("sweep1x2", "1 worker, 2 threads"),
                     ("sweep2", "2 workers, 1 thread")):
        print(f"  {label}: {med[m]:7.2f} s  {units / med[m]:5.2f} layer settings/s  "
              f"peak {peak[m]:6.0f} MB")
    print(f"  2 workers / 1 worker (1 thread): {med['sweep1'] / med['sweep2']:.2f}x;  "
          f"/ 1 worker (2 threads): {med['sweep1x2'] / med['sweep2']:.2f}x")
    per_gb = {m: med[m] / (size / 1024) for m in ("report", "sweep_all")}
    print(f"\nwhole checkpoint ({size:.0f} MB), one setting (prune 0.5, 4 bits):")
    print(f"  lowentropy report: {med['report']:7.2f} s ({per_gb['report']:.1f} s/GB), "
          f"peak {peak['report']:.0f} MB")
    print(f"  sweep, 1 process : {med['sweep_all']:7.2f} s ({per_gb['sweep_all']:.1f} s/GB), "
          f"peak {peak['sweep_all']:.0f} MB")
    print(f"  extrapolated to 28 GB (7 B parameters, float32): report "
          f"{per_gb['report'] * 28 / 60:.1f} min, sweep per setting "
          f"{per_gb['sweep_all'] * 28 / 60:.1f} min on this machine")
    if not args.keep:
        for f in os.listdir(folder):
            os.remove(os.path.join(folder, f))
        os.rmdir(folder)


if __name__ == "__main__":
    main()
