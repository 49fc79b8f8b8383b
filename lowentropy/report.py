"""Whole-network reports like the paper's tables: every layer in every format.

For each layer of a :class:`~lowentropy.Network`, after pruning and quantization: storage
of every registered format and its ratio to dense, the entropy and its floor, additions,
multiplications and energy of one inference (a layer's per-vector counts times its
``uses_per_inference``), and optionally the measured time of one product. Totals weigh
the layers as one forward pass does. Export as CSV, JSON or a markdown table.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .cost import DEFAULT_TABLE, compare
from .formats import FORMATS, get_format
from .networks import Layer, Network
from .recipe import Recipe
from .stats import Stats, stats

__all__ = ["LayerRow", "NetworkReport", "network_report", "network_stats"]


@dataclass(frozen=True)
class LayerRow:
    """One layer in one format (``layer == "total"`` for the network's sum)."""

    layer: str
    format: str
    kind: str
    shape: tuple[int, ...]
    uses_per_inference: int
    weights: int
    K: int
    H: float
    p0: float
    storage_bits: int
    dense_bits: int
    floor_bits: float
    adds: float  # per inference
    mults: float
    energy_pj: float
    time_s: float | None = None  # one product W @ x, measured

    @property
    def storage_ratio(self) -> float:
        """Storage relative to dense (below 1: smaller)."""
        return self.storage_bits / self.dense_bits if self.dense_bits else math.nan

    def as_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = "x".join(map(str, self.shape))
        d["storage_ratio"] = self.storage_ratio
        return d


_COLUMNS = ("layer", "format", "kind", "shape", "uses_per_inference", "weights", "K", "H",
            "p0", "storage_bits", "dense_bits", "storage_ratio", "floor_bits", "adds", "mults",
            "energy_pj", "time_s")


@dataclass
class NetworkReport:
    """Rows per layer and format, and the network totals per format."""

    network: str
    recipe: Recipe
    options: dict
    rows: list[LayerRow] = field(default_factory=list)

    def totals(self) -> list[LayerRow]:
        """One row per format summing all layers (``H``, ``p0`` weighted by weights)."""
        out = []
        for name in dict.fromkeys(r.format for r in self.rows):
            rs = [r for r in self.rows if r.format == name]
            n = sum(r.weights for r in rs) or 1
            times = [r.time_s for r in rs]
            out.append(LayerRow(
                layer="total", format=name, kind="", shape=(), uses_per_inference=0,
                weights=sum(r.weights for r in rs), K=max((r.K for r in rs), default=0),
                H=sum(r.H * r.weights for r in rs) / n, p0=sum(r.p0 * r.weights for r in rs) / n,
                storage_bits=sum(r.storage_bits for r in rs),
                dense_bits=sum(r.dense_bits for r in rs),
                floor_bits=sum(r.floor_bits for r in rs), adds=sum(r.adds for r in rs),
                mults=sum(r.mults for r in rs), energy_pj=sum(r.energy_pj for r in rs),
                time_s=None if None in times else sum(times),
            ))
        return out

    def table(self) -> list[dict]:
        return [r.as_dict() for r in [*self.rows, *self.totals()]]

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.table():
            writer.writerow({k: row[k] for k in _COLUMNS})
        return buf.getvalue()

    def to_json(self) -> str:
        return json.dumps({"network": self.network, "compression": self.recipe.as_dict(),
                           "options": self.options, "rows": self.table()}, indent=1)

    def to_markdown(self) -> str:
        """The paper-style table: per layer and format, storage vs dense, ops, energy."""
        head = ("| layer | format | shape | K | H bits | storage | vs dense | entropy floor "
                "| adds | mults | energy µJ |" + (" time ms |" if self._timed else ""))
        sep = "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|" + (
            "---:|" if self._timed else "")
        lines = [f"**{self.network}** — {self.recipe.describe()}; "
                 + ", ".join(f"{k} {v}" for k, v in self.options.items()), "", head, sep]
        for r in [*self.rows, *self.totals()]:
            name = f"**{r.layer}**" if r.layer == "total" else r.layer
            cells = [name, r.format, "x".join(map(str, r.shape)), f"{r.K:,}", f"{r.H:.3f}",
                     _mb(r.storage_bits), f"{r.storage_ratio:.3f}", _mb(r.floor_bits),
                     f"{r.adds:.4g}", f"{r.mults:.4g}", f"{r.energy_pj / 1e6:.4g}"]
            if self._timed:
                cells.append("" if r.time_s is None else f"{r.time_s * 1e3:.3f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines += [f"\n- {note}" for note in self.notes()]
        return "\n".join(lines)

    def notes(self) -> list[str]:
        """Plain-words notes on layers the paper's formats cannot help: unquantized
        weights, where almost every value is distinct (one line per such layer)."""
        out = []
        for r in self.rows:
            nonzero = r.weights * (1 - r.p0)
            if r.format == "cer" and r.K > 4096 and r.K * 16 > nonzero:
                out.append(
                    f"{r.layer}: {r.K:,} distinct values among {round(nonzero):,} non-zero "
                    "weights: the weights are not quantized, so CER/CSER find almost no "
                    "shared values to group and cost more than CSR; quantize (--bits or "
                    "--clusters) to see them help.")
        return out

    @property
    def _timed(self) -> bool:
        return any(r.time_s is not None for r in self.rows)

    def text(self) -> str:
        """A fixed-width table for a terminal: the totals, then every layer (whole names:
        the layer column is as wide as the longest)."""
        rows = [*self.totals(), *self.rows]
        w = (max(len("layer"), *(len(r.layer) for r in rows)), 7, 11, 9, 11, 11, 12)

        def line(cells):
            return "  ".join(str(c).rjust(n) if i else str(c).ljust(n)
                             for i, (c, n) in enumerate(zip(cells, w, strict=True)))
        out = [f"{self.network}: {self.recipe.describe()}; "
               + ", ".join(f"{k} {v}" for k, v in self.options.items()),
               line(["layer", "format", "storage", "vs dense", "adds", "mults", "energy µJ"])]
        for r in rows:
            out.append(line([r.layer, r.format, _mb(r.storage_bits),
                             f"{r.storage_ratio:.3f}", f"{r.adds:.3g}", f"{r.mults:.3g}",
                             f"{r.energy_pj / 1e6:.4g}"]))
        out += [f"note: {note}" for note in self.notes()]
        return "\n".join(out)


def _mb(bits: float) -> str:
    return f"{bits / 8e6:.3f} MB"


def _matrix(weight) -> np.ndarray:
    """A layer's weight as the matrix its product uses: rows × everything else."""
    W = np.asarray(weight)
    return W.reshape(W.shape[0], -1)


def _checked_recipe(recipe: Recipe | None) -> Recipe:
    recipe = Recipe() if recipe is None else recipe
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a lowentropy.Recipe, got {type(recipe).__name__}")
    return recipe


def _compressed_pairs(network: Network, recipe: Recipe, compressed: Network | None):
    if compressed is None:
        return recipe.compressed_layers(network)
    if [(x.name, x.shape) for x in compressed] != [(x.name, x.shape) for x in network]:
        raise ValueError(f"compressed has other layers than network {network.name!r}")
    return zip(network.layers, compressed.layers, strict=True)


def network_stats(
    network: Network,
    recipe: Recipe | None = None,
    *,
    progress: Callable[[int, int, str], object] | None = None,
    compressed: Network | None = None,
) -> list[tuple[Layer, Stats]]:
    """The statistics of every layer of ``network`` compressed by ``recipe``, as the
    matrix its product uses (rows × the rest), in network order: what
    :func:`network_report` prices (give them as its ``layer_stats`` to price them again
    under another accounting without compressing again).

    A quantizing recipe applied layer by layer is counted from the codes of one
    prune-and-quantize pass per layer (no dense copy); a global threshold, retraining
    or ``compressed`` (the network already compressed by ``recipe``) go through the
    compressed weights. ``progress(done, total, layer_name)`` after each layer.

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> net = le.Network("tiny", [le.Layer("fc", np.eye(4, dtype=np.float32))])
    >>> [(layer.name, s.K, s.p0) for layer, s in network_stats(net, le.Recipe(bits=4))]
    [('fc', 2, 0.75)]
    """
    recipe = _checked_recipe(recipe)
    if compressed is None and recipe.method is not None and not (
            recipe.retrain or recipe.global_prune):
        items = ((layer, stats(recipe.quantize(_matrix(layer.weight), return_codes=True,
                                               prune=recipe.fraction(layer.name))))
                 for layer in network.layers)
        recipe.check_network(network)
    else:
        items = ((layer, stats(_matrix(done.weight)))
                 for layer, done in _compressed_pairs(network, recipe, compressed))
    out = []
    for layer, s in items:
        out.append((layer, s))
        if progress is not None:
            progress(len(out), len(network.layers), layer.name)
    return out


def network_report(
    network: Network,
    recipe: Recipe | None = None,
    *,
    formats: Sequence[str] | None = None,
    policy: str = "minimal",
    value_bits: int = 32,
    table: str = DEFAULT_TABLE.name,
    measure: bool = False,
    progress: Callable[[int, int, str], object] | None = None,
    compressed: Network | None = None,
    layer_stats: Sequence[tuple[Layer, Stats]] | None = None,
) -> NetworkReport:
    """Compress every layer of ``network`` and account for it in every format.

    Parameters
    ----------
    network : Network
    recipe : Recipe, optional
        How to compress (:meth:`Recipe.compressed_layers`: layer by layer, unless the
        recipe needs the whole network). Default: nothing changed.
    formats : sequence of str, optional
        Format names (every registered format by default).
    policy, value_bits, table
        Index policy, value width and energy table (see :func:`lowentropy.compare`).
    measure : bool
        Also time one product ``W @ x`` per layer and format (slower; encodes the layer).
    progress : callable, optional
        ``progress(done, total, layer_name)`` after each layer.
    compressed : Network, optional
        ``network`` already compressed by ``recipe`` (e.g. retrained with a progress bar
        of its own, or cached), used as it is: same layer names and shapes.
    layer_stats : sequence of (Layer, Stats), optional
        The layers' statistics under ``recipe``, already taken (:func:`network_stats`):
        only the accounting is done (not with ``measure``, which needs the matrices).

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> net = le.Network("tiny", [le.Layer("fc", np.eye(4, dtype=np.float32))])
    >>> rep = network_report(net, le.Recipe(prune=0.5), formats=["dense", "cser"])
    >>> [(r.layer, r.format, r.storage_bits) for r in rep.totals()]
    [('total', 'dense', 512), ('total', 'cser', 208)]
    """
    recipe = _checked_recipe(recipe)
    names = list(FORMATS) if formats is None else list(formats)
    for name in names:
        get_format(name)
    report = NetworkReport(network.name, recipe, {"policy": policy, "value_bits": value_bits,
                                                  "energy table": table})
    accounting = dict(policy=policy, value_bits=value_bits, table=table)
    if measure:
        if layer_stats is not None:
            raise ValueError("measure=True times the compressed matrices; it cannot start "
                             "from layer_stats")
        for i, (layer, done) in enumerate(_compressed_pairs(network, recipe, compressed)):
            M = _matrix(done.weight)
            _add_rows(report, layer, stats(M), names, accounting, _measure(M, names))
            if progress is not None:
                progress(i + 1, len(network.layers), layer.name)
        return report
    if layer_stats is None:
        layer_stats = network_stats(network, recipe, progress=progress, compressed=compressed)
    elif [layer.name for layer, _ in layer_stats] != network.names:
        raise ValueError(f"layer_stats are not those of network {network.name!r}'s layers")
    for layer, s in layer_stats:
        _add_rows(report, layer, s, names, accounting, {})
    return report


def _add_rows(report: NetworkReport, layer: Layer, s: Stats, names: list[str],
              accounting: dict, times: dict[str, float]) -> None:
    rows = compare(s, names, **accounting)
    uses = int(layer.uses_per_inference)
    value_bits = accounting["value_bits"]
    for r in rows:
        report.rows.append(LayerRow(
            layer=layer.name, format=r.format, kind=layer.kind, shape=tuple(layer.shape),
            uses_per_inference=uses, weights=s.size, K=s.K, H=s.H, p0=s.p0,
            storage_bits=r.storage_bits, dense_bits=s.size * value_bits,
            floor_bits=s.entropy_floor_bits(value_bits), adds=r.adds * uses,
            mults=r.mults * uses, energy_pj=r.energy_pj * uses, time_s=times.get(r.format),
        ))


def _measure(M: np.ndarray, names: list[str]) -> dict[str, float]:
    from .bench import time_formats

    result = time_formats(M, names, budget=0.3, include_scipy=False)
    return {name: result.median(name) for name in names}
