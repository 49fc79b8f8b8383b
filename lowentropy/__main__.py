"""Command line: ``lowentropy report MODEL`` prints what the formats do to a network.

MODEL is a model file (NumPy, safetensors, ONNX, PyTorch, Keras) or a name from
``lowentropy.list_networks()``. Examples::

    lowentropy report lenet-300-100 --prune 0.9 --bits 5
    lowentropy report vgg16 --prune 0.96 --bits 5 --method kmeans --format csv > vgg16.csv
    lowentropy report model.safetensors --prune 0.8 --format json

Exit status 0 on success, 2 with a one-line reason on bad input.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import PRESETS, list_networks, load_network
from .report import Compression, network_report

DEFAULT_MODEL = "lenet-300-100"


class _Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal or forced)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int, name: str) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / max(total, 1))
        bar = "#" * filled + "-" * (width - filled)
        elapsed = time.perf_counter() - self.start
        end = "\n" if done == total else ""
        print(f"\r[{bar}] {done}/{total} layers, {elapsed:.1f} s  {name[:30]:<30}", end=end,
              file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lowentropy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="storage, operations and energy of every format, "
                         "per layer and in total")
    rep.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                     help=f"model file or embedded name (default {DEFAULT_MODEL}; "
                     f"names: {', '.join(list_networks())})")
    rep.add_argument("--prune", type=float, default=0.0, help="fraction pruned per layer")
    rep.add_argument("--global-prune", action="store_true",
                     help="one magnitude threshold over the whole network")
    rep.add_argument("--bits", type=int, help="quantize: uniform levels (or 2**bits k-means "
                     "clusters with --method kmeans)")
    rep.add_argument("--clusters", type=int, help="k-means shared values (implies kmeans)")
    rep.add_argument("--method", choices=["uniform", "kmeans"], help="quantizer "
                     "(default uniform with --bits, kmeans with --clusters)")
    rep.add_argument("--policy", default="minimal", choices=["minimal", "fixed32", "ideal"])
    rep.add_argument("--value-bits", type=int, default=32)
    rep.add_argument("--table", default="horowitz45nm", choices=sorted(PRESETS))
    rep.add_argument("--measure", action="store_true", help="also time W @ x per layer")
    rep.add_argument("--format", dest="output", default="table",
                     choices=["table", "markdown", "csv", "json"])
    rep.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar on stderr (default: when stderr is a terminal)")
    return parser


def _compression(args) -> Compression:
    method = args.method
    if method is None:
        method = "kmeans" if args.clusters else ("uniform" if args.bits else None)
    clusters = args.clusters
    if method == "kmeans" and clusters is None:
        if args.bits is None:
            raise ValueError("--method kmeans needs --clusters or --bits")
        clusters = 2 ** args.bits
    if method == "uniform" and args.bits is None:
        raise ValueError("--method uniform needs --bits")
    return Compression(prune=args.prune, method=method, bits=args.bits, clusters=clusters,
                       global_prune=args.global_prune)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        compression = _compression(args)
        network = load_network(args.model)
        progress = _Progress(sys.stderr.isatty() if args.progress is None else args.progress)
        report = network_report(network, compression, policy=args.policy,
                                value_bits=args.value_bits, table=args.table,
                                measure=args.measure, progress=progress)
    except (ValueError, TypeError, KeyError, OSError, ImportError, MemoryError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"lowentropy: error: {reason}", file=sys.stderr)
        return 2
    out = {"table": report.text, "markdown": report.to_markdown, "csv": report.to_csv,
           "json": report.to_json}[args.output]()
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
