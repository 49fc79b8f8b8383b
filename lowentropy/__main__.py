"""Command line: ``lowentropy report MODEL`` prints what the formats do to a network;
``lowentropy sweep MODEL`` runs every layer at many settings.

MODEL is a model file (NumPy, safetensors, ONNX, PyTorch, Keras), a sharded safetensors
checkpoint (its folder or ``*.safetensors.index.json``) or a name from
``lowentropy.list_networks()``. Examples::

    lowentropy report lenet-300-100 --prune 0.9 --bits 5
    lowentropy report lenet-300-100 --prune fc1=0.9,fc2=0.9,fc3=0.8 --clusters 32 --retrain
    lowentropy report vgg16 --prune 0.96 --bits 5 --method kmeans --format csv > vgg16.csv
    lowentropy report model.safetensors --prune 0.8 --format json
    lowentropy sweep path/to/checkpoint --prune 0.5,0.9 --bits 4,8 --out sweep.csv
    lowentropy sweep lenet-5 --prune "0.9;conv1=0.5,fc1=0.95" --clusters 32 --out s.csv
    lowentropy sweep vgg16 --prune 0.9 --clusters 16,32 --scheduler tcp://host:8786 \
        --out vgg16.json

``--prune`` takes a fraction of every layer (``0.9``) or fractions of named layers
(``fc1=0.8,fc2=0.9``; layers left out are not pruned). A sweep takes several, separated
by commas (fractions) or semicolons (``"0.5,0.9;fc1=0.8,fc2=0.9"``). ``--retrain``
retrains the network as Deep Compression does (the embedded digits networks, which carry
their training data); ``--seed`` makes it another, equally reproducible run.

A sweep logs every finished task next to its output (``FILE.log.jsonl``): after Ctrl-C,
the same command resumes where it stopped.

Exit status 0 on success, 2 with a one-line reason on bad input.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import PRESETS, list_networks, load_network
from .io.sharded import release_pages
from .recipe import Recipe, parse_prune
from .report import network_report
from .sweep.progress import ProgressBar as _Progress

DEFAULT_MODEL = "lenet-300-100"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lowentropy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="storage, operations and energy of every format, "
                         "per layer and in total")
    rep.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                     help=f"model file or embedded name (default {DEFAULT_MODEL}; "
                     f"names: {', '.join(list_networks())})")
    rep.add_argument("--prune", default="0", help="fraction pruned per layer (0.9), or per "
                     "named layer (fc1=0.8,fc2=0.9; others not pruned)")
    rep.add_argument("--global-prune", action="store_true",
                     help="one magnitude threshold over the whole network")
    rep.add_argument("--bits", type=int, help="quantize: uniform levels (or 2**bits k-means "
                     "clusters with --method kmeans)")
    rep.add_argument("--clusters", type=int, help="k-means shared values (implies kmeans)")
    rep.add_argument("--method", choices=["uniform", "kmeans"], help="quantizer "
                     "(default uniform with --bits, kmeans with --clusters)")
    _recipe_options(rep)
    rep.add_argument("--policy", default="minimal", choices=["minimal", "fixed32", "ideal"])
    rep.add_argument("--value-bits", type=int, default=32)
    rep.add_argument("--table", default="horowitz45nm", choices=sorted(PRESETS))
    rep.add_argument("--measure", action="store_true", help="also time W @ x per layer")
    rep.add_argument("--format", dest="output", default="table",
                     choices=["table", "markdown", "csv", "json"])
    rep.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar on stderr (default: when stderr is a terminal)")
    _sweep_parser(sub)
    return parser


def _sweep_parser(sub) -> None:
    sw = sub.add_parser("sweep", help="every layer at every pruning x quantization setting "
                        "in every format, locally or on a Dask cluster")
    sw.add_argument("model", help="model file, checkpoint folder or index, or embedded name")
    sw.add_argument("--prune", default="0", help="comma-separated fractions, e.g. 0.5,0.9; "
                    "per named layer fc1=0.8,fc2=0.9; several groups separated by ';'")
    sw.add_argument("--global-prune", action="store_true",
                    help="one magnitude threshold over the whole network per fraction")
    sw.add_argument("--bits", help="comma-separated uniform bits (or 2**bits k-means clusters "
                    "with --method kmeans); 'none' adds the unquantized setting")
    sw.add_argument("--clusters", help="comma-separated k-means shared values")
    sw.add_argument("--method", choices=["uniform", "kmeans"])
    _recipe_options(sw)
    sw.add_argument("--formats", help="comma-separated format names (default: every "
                    "registered format, lowentropy.FORMATS)")
    sw.add_argument("--policy", default="minimal", choices=["minimal", "fixed32", "ideal"])
    sw.add_argument("--value-bits", type=int, default=32)
    sw.add_argument("--table", default="horowitz45nm", choices=sorted(PRESETS))
    sw.add_argument("--scheduler", metavar="ADDRESS",
                    help="dask.distributed scheduler address (default: local processes)")
    sw.add_argument("--workers", type=int, help="local worker processes (default: all cores)")
    sw.add_argument("--measure", action="store_true", help="also time W @ x per format")
    sw.add_argument("--out", required=True, help="result file, .csv or .json")
    sw.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="progress bar on stderr (default: when stderr is a terminal)")


def _recipe_options(parser) -> None:
    parser.add_argument("--retrain", action="store_true", help="retrain as Deep Compression "
                        "does: gradual pruning, fine-tuning, shared-value fine-tuning "
                        "(networks with training data: the embedded digits networks)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the retraining")


def _sweep_prune(text: str) -> list:
    """``--prune`` of a sweep: groups separated by ';', each comma-separated fractions
    or one per-layer mapping."""
    out: list = []
    for group in text.split(";"):
        if "=" in group:
            out.append(dict(parse_prune(group)))
        else:
            out += [parse_prune(part) for part in group.split(",")]
    return out


def _numbers(text: str | None, name: str, kind: type) -> list | None:
    if text is None:
        return None
    values = []
    for part in text.split(","):
        part = part.strip()
        if kind is int and part.lower() == "none":
            values.append(None)
            continue
        try:
            values.append(kind(part))
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise ValueError(f"--{name}: {part!r} is not {what}") from None
    return values


def sweep_recipe_options(args) -> dict:
    """The options of :func:`lowentropy.sweep` that make its recipes, from
    ``lowentropy sweep``'s arguments."""
    bits, clusters = _numbers(args.bits, "bits", int), _numbers(args.clusters, "clusters", int)
    method = args.method
    if method == "kmeans" and bits is not None:
        if clusters is not None:
            raise ValueError("give --bits or --clusters, not both")
        clusters, bits = [None if b is None else 2 ** b for b in bits], None
    return dict(prune=_sweep_prune(args.prune), bits=bits, clusters=clusters, method=method,
                global_prune=args.global_prune, retrain=args.retrain, seed=args.seed)


def _sweep(args) -> int:
    from .sweep import sweep

    ext = os.path.splitext(args.out)[1].lower()
    if ext not in (".csv", ".json"):
        raise ValueError(f"--out must end in .csv or .json, got {args.out!r}")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    formats = None if args.formats is None else [f.strip() for f in args.formats.split(",")]
    kwargs = dict(**sweep_recipe_options(args), formats=formats, policy=args.policy,
                  value_bits=args.value_bits, table=args.table,
                  measure=args.measure, workers=args.workers, out=args.out + ".log.jsonl",
                  progress=sys.stderr.isatty() if args.progress is None else args.progress)
    if args.scheduler:
        from .io._common import require

        distributed = require("distributed", "dask[distributed]", "a Dask scheduler")
        with distributed.Client(args.scheduler) as client:
            table = sweep(args.model, client=client, **kwargs)
    else:
        table = sweep(args.model, **kwargs)
    (table.to_csv if ext == ".csv" else table.to_json)(args.out)
    print(f"{len(table)} rows written to {args.out}", file=sys.stderr)
    return 0


def recipe_from_args(args) -> Recipe:
    """The :class:`Recipe` of ``lowentropy report``'s options."""
    method = args.method
    if method is None:
        method = "kmeans" if args.clusters else ("uniform" if args.bits else None)
    clusters, bits = args.clusters, args.bits
    if method == "kmeans" and clusters is None:
        if bits is None:
            raise ValueError("--method kmeans needs --clusters or --bits")
        clusters, bits = 2 ** bits, None
    if method == "uniform" and bits is None:
        raise ValueError("--method uniform needs --bits")
    return Recipe(prune=parse_prune(args.prune), method=method, bits=bits,
                  clusters=clusters, global_prune=args.global_prune, retrain=args.retrain,
                  seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "sweep":
            return _sweep(args)
        recipe = recipe_from_args(args)
        network = load_network(args.model)
        bar = _Progress(sys.stderr.isatty() if args.progress is None else args.progress)

        def progress(done: int, total: int, name: str) -> None:
            release_pages(network[name])  # a mapped layer's pages leave memory once used
            bar(done, total, name)

        report = network_report(network, recipe, policy=args.policy,
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
