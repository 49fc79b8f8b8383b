"""Train the embedded digits networks in NumPy and write their weights.

The training itself is :func:`lowentropy.networks.training.train` (its settings are
``lowentropy.networks.training.SETTINGS``). Reproducible: a fixed seed drives
initialisation and batch order; training runs in float64
and the weights are stored as float32 in ``lowentropy/networks/data/<name>.npz`` (arrays
``<layer>.weight`` and ``<layer>.bias``). The test accuracies printed at the end are those
recorded in ``lowentropy/networks/data/README.md``.

Usage::

    python scripts/train_digits.py                 # all networks, into the package
    python scripts/train_digits.py --out /tmp/w    # elsewhere
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from lowentropy.networks.embedded import ARCHITECTURES, accuracy, digits, load_embedded
from lowentropy.networks.training import train

DATA = Path(__file__).resolve().parents[1] / "lowentropy" / "networks" / "data"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA, help="folder for <name>.npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("networks", nargs="*", default=list(ARCHITECTURES))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.networks:
        start = time.perf_counter()
        weights = train(name, args.seed)
        np.savez_compressed(args.out / f"{name}.npz", **weights)
        print(f"{name}: trained in {time.perf_counter() - start:.1f} s -> "
              f"{args.out / f'{name}.npz'}")
    if args.out.resolve() == DATA.resolve():
        for name in args.networks:
            net = load_embedded(name)
            _, labels = digits("test")
            acc = accuracy(net, "test")
            print(f"{name}: test accuracy {round(acc * len(labels))}/{len(labels)} = "
                  f"{acc!r}; train accuracy {accuracy(net, 'train')!r}")


if __name__ == "__main__":
    main()
