"""One sweep task: open one layer, compress it at a few settings, account for every format.

A task is cheap to send: where the layer lives (a checkpoint or file path, or a name of
:func:`lowentropy.list_networks`) and the layer's name; only a network that exists in
memory alone travels as its arrays. The same function runs in-process, in a local worker
process and on a Dask worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..cost import compare
from ..recipe import Recipe
from ..stats import stats
from ..threads import numba_threads
from ._settings import row_key_of

__all__ = ["LayerMeta", "Options", "Task", "open_weight", "run_task"]

#: How a task finds its layer.
SOURCE_KINDS = ("checkpoint", "file", "registry", "array")


@dataclass(frozen=True)
class LayerMeta:
    """What the table says of a layer, known without reading its weights."""

    name: str
    kind: str
    shape: tuple[int, ...]
    source_dtype: str

    @property
    def rows(self) -> int:
        return int(self.shape[0])

    @property
    def weights(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def cols(self) -> int:
        return self.weights // self.rows if self.rows else 0


@dataclass(frozen=True)
class Options:
    network: str
    formats: tuple[str, ...]
    policy: str = "minimal"
    value_bits: int = 32
    table: object = "horowitz45nm"  # preset name or EnergyTable
    measure: bool = False


@dataclass(frozen=True, eq=False)
class Task:
    """A layer and the settings to run on it (``compressed``: the source holds the layer
    already compressed at its single setting, e.g. retrained)."""

    source_kind: str
    source: str  # path or registry name; "" for arrays
    layer: LayerMeta
    settings: tuple[Recipe, ...]
    options: Options
    array: np.ndarray | None = field(default=None, repr=False)
    threads: int | None = None  # numba threads inside the task (None: leave as is)
    compressed: bool = False

    @property
    def keys(self) -> list[tuple]:
        return [row_key_of(self.layer.name, s) for s in self.settings]


def open_weight(task: Task) -> np.ndarray:
    """The layer's weight tensor, opened by the task itself (memory-mapped when the
    source allows)."""
    from ..io.network import load_network

    name = task.layer.name
    if task.source_kind == "array":
        return task.array
    if task.source_kind == "checkpoint":
        from ..io.sharded import open_checkpoint

        return open_checkpoint(task.source).array(name)
    if task.source_kind == "registry":
        from ..networks.catalogue import CATALOGUE

        if task.source in CATALOGUE:
            return load_network(task.source, layers=name)[name].weight
        return load_network(task.source)[name].weight
    if task.source_kind == "file":
        return load_network(task.source)[name].weight
    raise ValueError(f"unknown source kind {task.source_kind!r}")


def _measure(M: np.ndarray, names: list[str]) -> dict[str, float]:
    from ..bench import time_formats

    result = time_formats(M, names, budget=0.3, include_scipy=False)
    return {name: result.median(name) * 1e3 for name in names}


def setting_rows(Wc: np.ndarray, setting: Recipe, meta: LayerMeta,
                 options: Options) -> list[dict]:
    """The rows of one layer compressed at one setting (``Wc``: the compressed layer)."""
    M = Wc.reshape(Wc.shape[0], -1)
    s = stats(M)
    names = list(options.formats)
    costs = compare(s, names, policy=options.policy, value_bits=options.value_bits,
                    table=options.table)
    times = _measure(M, names) if options.measure else {}
    base = {"network": options.network, "layer": meta.name, "kind": meta.kind,
            "rows": meta.rows, "cols": meta.cols, "weights": meta.weights,
            "source_dtype": meta.source_dtype, "prune": setting.fraction(meta.name),
            "quantizer": setting.quantizer, "levels": setting.levels}
    return [{**base, "format": r.format, "K": s.K, "entropy_bits": s.H, "p0": s.p0,
             "storage_bits": int(r.storage_bits), "ratio_to_dense": r.storage_gain,
             "adds": float(r.adds), "mults": float(r.mults), "reads": float(r.reads),
             "energy_pj": float(r.energy_pj), "energy_ratio": r.energy_gain,
             "time_ms": times.get(r.format), "accuracy": None} for r in costs]


def run_task(task: Task) -> list[dict]:
    """Rows of every setting of the task, in setting then format order. The layer is
    opened once; each pruning fraction is applied once for all its quantizers."""
    from ..compress import prune

    with numba_threads(task.threads):
        W = open_weight(task)
        if tuple(W.shape) != task.layer.shape:
            raise ValueError(f"layer {task.layer.name!r} has shape {W.shape} where the sweep "
                             f"expected {task.layer.shape} (source changed?)")
        if task.compressed:
            (setting,) = task.settings
            return setting_rows(W, setting, task.layer, task.options)
        rows: list[dict] = []
        pruned: dict[float, np.ndarray] = {}
        for setting in task.settings:
            p = setting.fraction(task.layer.name)
            if p > 0 and p not in pruned:
                pruned.clear()  # keep one pruned copy at a time
                pruned[p] = prune(W, p)
            Wc = setting.quantize(pruned.get(p, W))
            rows += setting_rows(Wc, setting, task.layer, task.options)
        return rows
