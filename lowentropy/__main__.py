"""Command line: ``python -m lowentropy report`` prints what the formats do to a layer.

Until real networks are loaded, the report covers two clearly synthetic layers with the
statistics of compressed networks: AlexNet fc6's shape pruned to 9 % and shared to 32
values (Deep-Compression-like), and a convolution-like layer quantized to 16 levels
without pruning (low entropy, not sparse).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from . import FORMATS, PRESETS, compare, stats, table_text
from .synthetic import synthetic_layer

DEFAULT_LAYERS = {
    "alexnet-fc6 (synthetic: 9% kept, 32 shared values)": dict(
        shape=(4096, 9216), keep=0.09, levels=32),
    "conv 512x4608 (synthetic: unpruned, 16 levels)": dict(
        shape=(512, 4608), keep=1.0, levels=16),
}


def report_layer(title: str, W: np.ndarray, *, policy: str, value_bits: int, table: str,
                 batch: int) -> str:
    """The report of one matrix: statistics, then storage, operations and energy."""
    s = stats(W)
    floor = s.entropy_floor_bits(value_bits)
    lines = [
        f"== {title}",
        f"   {s.shape[0]} x {s.shape[1]} {s.dtype}: K = {s.K} distinct values, "
        f"H = {s.H:.3f} bits/entry, p0 = {s.p0:.3f} (omega_0 = {s.omega[0]:.4g}), "
        f"N = {s.N}, zeros = {s.sparsity:.1%}",
        f"   groups: CER {s.G_cer}, CSER {s.G_cser}; entropy floor {floor / 8e6:.3f} MB "
        f"(dense {s.size * value_bits / 8e6:.3f} MB)",
        f"   per input vector, batch {batch}, {policy} indices, {value_bits}-bit values, "
        f"energy table {table}; gain = dense / format",
    ]
    rows = compare(W, list(FORMATS), policy=policy, value_bits=value_bits, batch=batch,
                   table=table)
    lines += ["   " + line for line in table_text(rows).splitlines()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lowentropy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="storage, operations and energy of every format")
    rep.add_argument("--policy", default="minimal", choices=["minimal", "fixed32", "ideal"])
    rep.add_argument("--value-bits", type=int, default=32)
    rep.add_argument("--table", default="horowitz45nm", choices=sorted(PRESETS))
    rep.add_argument("--batch", type=int, default=1)
    args = parser.parse_args(argv)
    for title, spec in DEFAULT_LAYERS.items():
        W = synthetic_layer(spec["shape"], keep=spec["keep"], levels=spec["levels"])
        print(report_layer(title, W, policy=args.policy, value_bits=args.value_bits,
                           table=args.table, batch=args.batch))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
