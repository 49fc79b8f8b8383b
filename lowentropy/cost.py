"""Energy cost model of one dot product (SPEC §5).

Energy is ``Σ count × unit cost`` over the operation counts a format reports
(:meth:`~lowentropy.Format.op_counts`): additions and multiplications at the value width,
every read of every array (the format's arrays and ``x``) at the array's access width and
in the memory tier its total size falls into, and the writes of ``y``. Unit costs come
from an :class:`EnergyTable`, which is plain data: pick a preset from :data:`PRESETS`,
edit a copy with :meth:`EnergyTable.with_costs`, or round-trip it through
:meth:`EnergyTable.to_dict` / :meth:`EnergyTable.from_dict`.

This is a model, not a measurement: time is measured elsewhere, never derived from it.

Examples
--------
>>> import numpy as np, lowentropy as le
>>> from lowentropy.cost import compare, energy
>>> W = np.array([[0, 3, 0, 2], [4, 4, 0, 0]], dtype=np.float32)
>>> report = energy(le.Dense.from_dense(W).op_counts())  # 8 adds, 8 mults, 16 reads, 2 writes
>>> round(report.total_pj, 6)
126.8
>>> rows = compare(W, ["dense", "cser"])
>>> [(r.format, r.storage_bits, round(r.energy_gain, 3)) for r in rows]
[('dense', 256, 1.0), ('cser', 240, 1.563)]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from .formats import FORMATS, Dense, Format, OpCounts, get_format
from .stats import Stats

__all__ = [
    "EnergyTable", "PRESETS", "DEFAULT_TABLE", "get_table",
    "EnergyReport", "energy", "CostRow", "compare", "table_text",
]

REQUIRED_WIDTHS = (8, 16, 32)
KB = 1024
MB = 1024 * KB


# --- the table -----------------------------------------------------------------------------


def _costs(what: str, costs: Mapping) -> MappingProxyType:
    """Validate a width → pJ mapping; return a read-only copy with int keys, float values."""
    if not isinstance(costs, Mapping):
        raise TypeError(f"{what} must be a mapping width → pJ, got {type(costs).__name__}")
    out: dict[int, float] = {}
    for width, cost in costs.items():
        try:
            w = int(width)  # also "8", as after a JSON round trip
        except (TypeError, ValueError):
            raise ValueError(f"{what}: width {width!r} is not an integer number of bits") from None
        if w < 1 or (not isinstance(width, str) and w != width):
            raise ValueError(f"{what}: width {width!r} must be a positive integer")
        try:
            c = float(cost)
        except (TypeError, ValueError):
            raise ValueError(f"{what}[{w}]: cost {cost!r} is not a number") from None
        if not math.isfinite(c) or c < 0:
            raise ValueError(f"{what}[{w}]: cost must be finite and >= 0 pJ, got {cost!r}")
        out[w] = c
    missing = [w for w in REQUIRED_WIDTHS if w not in out]
    if missing:
        raise ValueError(f"{what}: missing cost for width(s) {missing}; give 8, 16 and 32 bits")
    return MappingProxyType(dict(sorted(out.items())))


def _width_cost(costs: Mapping[int, float], bits: int) -> float:
    """Cost of a ``bits``-wide operation: the smallest tabulated width ≥ ``bits``, or, above
    the widest tabulated width, that width's cost scaled by ``bits / width``."""
    if isinstance(bits, bool) or int(bits) != bits or bits < 1:
        raise ValueError(f"bits must be a positive integer, got {bits!r}")
    for width, cost in costs.items():  # ascending
        if width >= bits:
            return cost
    widest = max(costs)
    return costs[widest] * bits / widest


@dataclass(frozen=True, eq=True)
class EnergyTable:
    """Unit energies (pJ) of arithmetic and memory accesses, by bit width.

    Plain data; the mappings are read-only copies (edit with :meth:`with_costs`,
    :meth:`replace` or :meth:`to_dict` / :meth:`from_dict`), so that a preset cannot be
    changed by accident.

    Parameters
    ----------
    name : str
        Shown in reports.
    add, mult : mapping of int to float
        Width in bits → pJ per operation. Widths 8, 16 and 32 are required; other widths
        may be added.
    memory : sequence of (max_bytes, mapping)
        Memory tiers in ascending ``max_bytes``, the last with ``max_bytes = math.inf``;
        each maps width → pJ per access (read or write). An access uses the first tier
        whose ``max_bytes`` is ≥ the size of the whole array accessed.

    Notes
    -----
    Width rule (:meth:`add_cost`, :meth:`mult_cost`, :meth:`access_cost`): a width not in
    the table costs as the smallest tabulated width ≥ it (a 1-, 4- or 5-bit index costs an
    8-bit access, 12 bits cost 16); above the widest tabulated width (32) the cost scales
    proportionally (64 bits = 2 × the 32-bit cost, 33 bits = 33/32 of it).

    Raises
    ------
    ValueError
        A negative or non-finite cost, a missing width, tiers not ascending or the last
        tier not ``math.inf``.

    Examples
    --------
    >>> t = DEFAULT_TABLE
    >>> t.add_cost(32), t.mult_cost(8), t.mult_cost(64)
    (0.9, 0.6, 7.4)
    >>> t.access_cost(32, array_bytes=8192), t.access_cost(32, array_bytes=8193)
    (5.0, 10.0)
    >>> t.access_cost(4, array_bytes=2 * 1024**2)  # a 4-bit index in DRAM: 8-bit cost
    250.0
    >>> cheap = t.with_costs(mult={32: 0.9})
    >>> cheap.name, cheap.mult_cost(32), t.mult_cost(32)
    ('horowitz45nm (edited)', 0.9, 3.7)
    """

    name: str
    add: Mapping[int, float]
    mult: Mapping[int, float]
    memory: tuple[tuple[float, Mapping[int, float]], ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "add", _costs("add", self.add))
        object.__setattr__(self, "mult", _costs("mult", self.mult))
        if isinstance(self.memory, Mapping) or not self.memory:
            raise ValueError("memory must be a non-empty sequence of (max_bytes, costs) tiers")
        tiers = []
        previous = 0.0
        for i, tier in enumerate(self.memory):
            try:
                max_bytes, costs = tier
                max_bytes = float(max_bytes)
            except (TypeError, ValueError):
                raise ValueError(
                    f"memory tier {i} must be a pair (max_bytes, {{width: pJ}}), got {tier!r}"
                ) from None
            if not max_bytes > previous:
                raise ValueError(
                    f"memory tiers must have ascending max_bytes > 0; tier {i} has {max_bytes} "
                    f"after {previous}"
                )
            tiers.append((max_bytes, _costs(f"memory tier {i} (≤ {max_bytes:g} bytes)", costs)))
            previous = max_bytes
        if tiers[-1][0] != math.inf:
            raise ValueError(
                f"the last memory tier must have max_bytes = math.inf, got {tiers[-1][0]}"
            )
        object.__setattr__(self, "memory", tuple(tiers))

    # --- unit costs ------------------------------------------------------------------------
    def add_cost(self, bits: int) -> float:
        """pJ of one addition of ``bits``-wide values (width rule in the class notes)."""
        return _width_cost(self.add, bits)

    def mult_cost(self, bits: int) -> float:
        """pJ of one multiplication of ``bits``-wide values (width rule in the class notes)."""
        return _width_cost(self.mult, bits)

    def tier(self, array_bytes: float) -> int:
        """Index of the memory tier of an array of ``array_bytes`` bytes (first tier whose
        ``max_bytes`` ≥ ``array_bytes``)."""
        size = float(array_bytes)
        if not size >= 0:
            raise ValueError(f"array_bytes must be >= 0, got {array_bytes!r}")
        return next(i for i, (max_bytes, _) in enumerate(self.memory) if size <= max_bytes)

    def access_cost(self, bits: int, array_bytes: float) -> float:
        """pJ of one read or write of ``bits`` bits in an array of ``array_bytes`` bytes."""
        return _width_cost(self.memory[self.tier(array_bytes)][1], bits)

    # --- editing ----------------------------------------------------------------------------
    def replace(self, **changes: Any) -> EnergyTable:
        """A copy with whole fields replaced (``name``, ``add``, ``mult``, ``memory``);
        validated like a new table."""
        return dataclasses.replace(self, **changes)

    def with_costs(
        self,
        *,
        add: Mapping | None = None,
        mult: Mapping | None = None,
        memory: Mapping[float, Mapping] | None = None,
        name: str | None = None,
    ) -> EnergyTable:
        """A copy with some unit costs changed; the others are kept.

        Parameters
        ----------
        add, mult : mapping width → pJ, optional
            Merged into the current costs (``{32: 0.9}`` changes only the 32-bit cost).
        memory : mapping max_bytes → (mapping width → pJ), optional
            Merged into the tier with that ``max_bytes`` (``{math.inf: {32: 640}}``
            changes the 32-bit DRAM access). To change the tier boundaries use
            :meth:`replace`.
        name : str, optional
            Defaults to the current name followed by ``" (edited)"``.
        """
        tiers = dict(self.memory)
        for max_bytes, costs in (memory or {}).items():
            if float(max_bytes) not in tiers:
                raise ValueError(
                    f"no memory tier with max_bytes {max_bytes!r}; tiers: {list(tiers)} "
                    "(use replace(memory=...) to change the boundaries)"
                )
            tiers[float(max_bytes)] = {**tiers[float(max_bytes)], **costs}
        if name is None:
            name = self.name if self.name.endswith(" (edited)") else f"{self.name} (edited)"
        return EnergyTable(
            name=name,
            add={**self.add, **(add or {})},
            mult={**self.mult, **(mult or {})},
            memory=tuple(tiers.items()),
        )

    def to_dict(self) -> dict[str, Any]:
        """The table as plain, editable data.

        ``{"name": str, "add": {width: pJ}, "mult": {width: pJ}, "memory": [{"max_bytes":
        float, width: pJ, ...}, ...]}``; each memory tier is one flat row, ready for an
        editable table. :meth:`from_dict` inverts it.
        """
        return {
            "name": self.name,
            "add": dict(self.add),
            "mult": dict(self.mult),
            "memory": [{"max_bytes": mb, **costs} for mb, costs in self.memory],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnergyTable:
        """Build a table from :meth:`to_dict`'s layout.

        Widths may be strings (``"8"``, as after a JSON round trip); the last tier's
        ``max_bytes`` may be ``math.inf``, ``"inf"`` or ``None``.

        Examples
        --------
        >>> d = DEFAULT_TABLE.to_dict()
        >>> d["memory"][-1]
        {'max_bytes': inf, 8: 250.0, 16: 500.0, 32: 1000.0}
        >>> d["memory"][-1][32] = 640.0
        >>> EnergyTable.from_dict(d).access_cost(32, 1e9)
        640.0
        """
        unknown = set(data) - {"name", "add", "mult", "memory"}
        missing = {"name", "add", "mult", "memory"} - set(data)
        if unknown or missing:
            raise ValueError(
                f"an energy table has the keys name, add, mult, memory; "
                f"missing {sorted(missing)}, unknown {sorted(unknown)}"
            )
        tiers = []
        for row in data["memory"]:
            row = dict(row)
            if "max_bytes" not in row:
                raise ValueError(f"memory row {row!r} has no max_bytes")
            max_bytes = row.pop("max_bytes")
            tiers.append((math.inf if max_bytes is None else float(max_bytes), row))
        return cls(name=data["name"], add=data["add"], mult=data["mult"], memory=tuple(tiers))

    # --- dataclass plumbing for the read-only mappings ----------------------------------------
    def _key(self) -> tuple:
        return (
            self.name,
            tuple(self.add.items()),
            tuple(self.mult.items()),
            tuple((mb, tuple(c.items())) for mb, c in self.memory),
        )

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self):  # mappingproxy does not pickle (dask ships tables to workers)
        return (EnergyTable.from_dict, (self.to_dict(),))

    def __repr__(self) -> str:
        d = self.to_dict()
        memory = ", ".join(f"({mb!r}, {dict(c)!r})" for mb, c in self.memory)
        return (
            f"EnergyTable(name={d['name']!r}, add={d['add']!r}, mult={d['mult']!r}, "
            f"memory=({memory}))"
        )


_HOROWITZ = EnergyTable(
    name="horowitz45nm",
    add={8: 0.2, 16: 0.4, 32: 0.9},
    mult={8: 0.6, 16: 1.1, 32: 3.7},
    memory=(
        (8 * KB, {8: 1.25, 16: 2.5, 32: 5.0}),
        (32 * KB, {8: 2.5, 16: 5.0, 32: 10.0}),
        (MB, {8: 12.5, 16: 25.0, 32: 50.0}),
        (math.inf, {8: 250.0, 16: 500.0, 32: 1000.0}),  # DRAM
    ),
)

#: Preset energy tables by name.
#:
#: ``"horowitz45nm"`` (the default, :data:`DEFAULT_TABLE`)
#:     SPEC §5's table: 45 nm, after Horowitz (ISSCC 2014). Arrays up to 8 KB, 32 KB and
#:     1 MB (1024-byte KB/MB, bounds inclusive) cost as SRAM of that size, larger ones as
#:     DRAM.
#: ``"fma"``
#:     The same memory costs, but a multiplication costs the same as an addition at every
#:     width, as on CPUs whose fused multiply-add makes a multiply no dearer than an add.
#: ``"compute-only"``
#:     The default's arithmetic with every memory access free: only additions and
#:     multiplications count (the tiers are kept so that edits can restore them).
PRESETS: dict[str, EnergyTable] = {
    "horowitz45nm": _HOROWITZ,
    "fma": _HOROWITZ.replace(name="fma", mult=_HOROWITZ.add),
    "compute-only": _HOROWITZ.replace(
        name="compute-only",
        memory=tuple((mb, dict.fromkeys(c, 0.0)) for mb, c in _HOROWITZ.memory),
    ),
}

#: The default table, ``PRESETS["horowitz45nm"]``.
DEFAULT_TABLE: EnergyTable = PRESETS["horowitz45nm"]


def get_table(table: EnergyTable | str) -> EnergyTable:
    """``table`` itself, or the preset of that name.

    Raises
    ------
    KeyError
        For an unknown preset name (the message lists the presets).
    TypeError
        For anything else.

    Examples
    --------
    >>> get_table("fma").mult_cost(32)
    0.9
    """
    if isinstance(table, EnergyTable):
        return table
    if isinstance(table, str):
        try:
            return PRESETS[table]
        except KeyError:
            raise KeyError(
                f"unknown energy table preset {table!r}; presets: {', '.join(PRESETS)}"
            ) from None
    raise TypeError(f"table must be an EnergyTable or a preset name, got {type(table).__name__}")


# --- energy of one format ------------------------------------------------------------------


@dataclass(frozen=True)
class EnergyReport:
    """Energy of one dot product per input vector, item by item.

    Attributes
    ----------
    format : str
    batch : int
        Input vectors per product (the format's arrays are read once per batch).
    by_item : dict
        ``"adds"``, ``"mults"``, ``"read <array>"`` for each array read (the format's,
        then ``"read x"``) and ``"write y"`` → pJ per input vector.
    table : str
        Name of the energy table used.
    """

    format: str
    batch: int
    by_item: dict[str, float]
    table: str = DEFAULT_TABLE.name

    @property
    def total_pj(self) -> float:
        """pJ per input vector, all items."""
        return sum(self.by_item.values())

    def by_kind(self) -> dict[str, float]:
        """pJ per input vector by kind: ``"arithmetic"``, ``"reads"``, ``"writes"``."""
        kinds = {"arithmetic": 0.0, "reads": 0.0, "writes": 0.0}
        for item, pj in self.by_item.items():
            kind = "reads" if item.startswith("read ") else (
                "writes" if item.startswith("write ") else "arithmetic"
            )
            kinds[kind] += pj
        return kinds


def energy(counts: OpCounts, table: EnergyTable | str = DEFAULT_TABLE) -> EnergyReport:
    """Energy of the operations in ``counts`` under ``table`` (SPEC §5).

    Additions and multiplications are costed at the value width (``counts.write_bits``,
    the ``value_bits`` the counts were made with); each array's reads at its access width
    in the tier of its total size; the writes of ``y`` at the value width in the tier of
    ``y``'s size.

    Parameters
    ----------
    counts : OpCounts
        From ``fmt.op_counts(batch=..., policy=..., value_bits=...)``.
    table : EnergyTable or str
        A table or a preset name (see :data:`PRESETS`).

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> f = le.CSR.from_dense(np.array([[0, 2, 0], [1, 0, 0]], dtype=np.float32))
    >>> r = energy(f.op_counts())
    >>> r.by_item  # doctest: +NORMALIZE_WHITESPACE
    {'adds': 1.8, 'mults': 7.4, 'read values': 10.0, 'read col_idx': 2.5,
     'read row_ptr': 3.75, 'read x': 10.0, 'write y': 10.0}
    >>> round(r.by_kind()["arithmetic"], 6), round(energy(f.op_counts(), "fma").total_pj, 6)
    (9.2, 39.85)
    """
    if not isinstance(counts, OpCounts):
        raise TypeError(
            f"energy() takes an OpCounts (fmt.op_counts(...)), got {type(counts).__name__}"
        )
    table = get_table(table)
    bits = counts.write_bits
    items = {
        "adds": counts.adds * table.add_cost(bits),
        "mults": counts.mults * table.mult_cost(bits),
    }
    for name, count in counts.reads.items():
        items[f"read {name}"] = count * table.access_cost(
            counts.access_bits[name], counts.array_bytes[name]
        )
    items["write y"] = counts.writes * table.access_cost(bits, counts.out_bytes)
    return EnergyReport(counts.format, counts.batch, items, table.name)


# --- comparison against dense ----------------------------------------------------------------


@dataclass(frozen=True)
class CostRow:
    """Storage, operations and energy of one format, with its gains over dense.

    A *gain* is ``dense / format``: above 1 the format is better (smaller, fewer
    operations, less energy) than dense, below 1 worse; dense's own gains are exactly 1.
    Equal values give 1 (also 0 / 0); a format needing 0 where dense needs more gives
    ``inf``. (Note the direction is the inverse of ``StorageReport.ratio_to_dense``.)

    Attributes
    ----------
    format : str
        The format's name (the key, when :func:`compare` was given a dict).
    storage_bits : int
        Total bits under the policy and ``value_bits`` of the comparison.
    adds, mults, reads : float
        Per input vector; ``reads`` counts all arrays' reads, ``x`` included.
    energy_pj : float
        pJ per input vector.
    storage_gain, ops_gain, energy_gain : float
        Dense's storage bits, adds + mults and energy divided by the format's.
    """

    format: str
    storage_bits: int
    adds: float
    mults: float
    reads: float
    energy_pj: float
    storage_gain: float
    ops_gain: float
    energy_gain: float

    @property
    def ops(self) -> float:
        """Additions plus multiplications per input vector."""
        return self.adds + self.mults


def _gain(reference: float, value: float) -> float:
    if value == reference:
        return 1.0
    return reference / value if value else math.inf


def compare(
    W_or_formats: Any,
    formats: Iterable[str] | None = None,
    *,
    policy: str = "minimal",
    value_bits: int = 32,
    batch: int = 1,
    table: EnergyTable | str = DEFAULT_TABLE,
) -> list[CostRow]:
    """Storage, operations and energy of several formats, with their gains over dense.

    Parameters
    ----------
    W_or_formats : array_like, Stats, dict of str to Format, or Format
        A dense matrix, encoded in each format named by ``formats`` (default: every format
        in :data:`lowentropy.FORMATS`); or its :func:`lowentropy.stats`, which give the same
        rows without encoding anything (fast: what a live view needs); or already encoded
        formats of one matrix, by name (a single format stands for ``{fmt.name: fmt}``).
    formats : iterable of str, optional
        Format names, for a dense matrix or its stats only. Rows come in this order.
    policy, value_bits
        Index policy and value width for storage and access widths (see
        ``Format.storage``).
    batch : int
        Input vectors per product (see ``Format.op_counts``).
    table : EnergyTable or str
        Energy table or preset name.

    Returns
    -------
    list of CostRow
        One per format requested. Dense is always the reference of the gains: it is
        computed even when it is not among the rows.

    Raises
    ------
    KeyError
        Unknown format or preset name.
    ValueError
        Formats of different shapes, or an empty selection.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.zeros((64, 64), np.float32); W[::8, ::4] = 1.5
    >>> print(table_text(compare(W, ["csr", "cser"], batch=8)))
    format  storage bits  adds  mults   reads  energy pJ  storage gain  ops gain  energy gain
    csr             5640   128    128  168.12    1658.96         23.24     32.00        26.98
    cser            1744   136      8  163.12    1159.66         75.16     56.89        38.60
    """
    table = get_table(table)
    if isinstance(W_or_formats, Stats):
        return _compare_stats(W_or_formats, formats, policy, value_bits, batch, table)
    if isinstance(W_or_formats, Format):
        W_or_formats = {W_or_formats.name: W_or_formats}
    if isinstance(W_or_formats, Mapping):
        if formats is not None:
            raise TypeError("give format names only with a dense matrix, not with encoded formats")
        encoded = dict(W_or_formats)
        for name, f in encoded.items():
            if not isinstance(f, Format):
                raise TypeError(f"{name!r} maps to a {type(f).__name__}, not a Format")
        if not encoded:
            raise ValueError("no formats to compare")
        shapes = {f.shape for f in encoded.values()}
        if len(shapes) > 1:
            raise ValueError(f"formats of one matrix are compared; got shapes {sorted(shapes)}")
        dense = next((f for f in encoded.values() if isinstance(f, Dense)), None)
        if dense is None:
            dense = Dense.from_dense(next(iter(encoded.values())).to_dense())
    else:
        names = list(FORMATS) if formats is None else (
            [formats] if isinstance(formats, str) else list(formats)
        )
        if not names:
            raise ValueError("no formats to compare")
        classes = {name: get_format(name) for name in names}
        W = np.asarray(W_or_formats)
        dense = Dense.from_dense(W)
        encoded = {
            name: dense if cls is Dense else cls.from_dense(W) for name, cls in classes.items()
        }

    def measure(f: Format) -> tuple[int, OpCounts, float]:
        counts = f.op_counts(batch=batch, policy=policy, value_bits=value_bits)
        return f.storage(policy, value_bits).total_bits, counts, energy(counts, table).total_pj

    ref_bits, ref_counts, ref_pj = measure(dense)
    ref = (ref_bits, ref_counts.adds + ref_counts.mults, ref_pj)
    return [_row(name, *((ref_bits, ref_counts, ref_pj) if f is dense else measure(f)), ref)
            for name, f in encoded.items()]


def _row(name: str, bits: int, counts: OpCounts, pj: float, ref: tuple) -> CostRow:
    ref_bits, ref_ops, ref_pj = ref
    return CostRow(
        format=name, storage_bits=bits, adds=counts.adds, mults=counts.mults,
        reads=counts.total_reads, energy_pj=pj, storage_gain=_gain(ref_bits, bits),
        ops_gain=_gain(ref_ops, counts.adds + counts.mults), energy_gain=_gain(ref_pj, pj),
    )


def _compare_stats(s: Stats, formats, policy, value_bits, batch, table) -> list[CostRow]:
    names = list(FORMATS) if formats is None else (
        [formats] if isinstance(formats, str) else list(formats)
    )
    if not names:
        raise ValueError("no formats to compare")

    def measure(cls) -> tuple[int, OpCounts, float]:
        counts = cls.op_counts_for(s, batch=batch, policy=policy, value_bits=value_bits)
        bits = cls.storage_for(s, policy, value_bits).total_bits
        return bits, counts, energy(counts, table).total_pj

    ref_bits, ref_counts, ref_pj = measure(Dense)
    ref = (ref_bits, ref_counts.adds + ref_counts.mults, ref_pj)
    return [_row(name, *measure(get_format(name)), ref) for name in names]


_COLUMNS = (  # header, attribute, format of a number
    ("format", "format", None),
    ("storage bits", "storage_bits", "count"),
    ("adds", "adds", "count"),
    ("mults", "mults", "count"),
    ("reads", "reads", "count"),
    ("energy pJ", "energy_pj", ".2f"),
    ("storage gain", "storage_gain", ".2f"),
    ("ops gain", "ops_gain", ".2f"),
    ("energy gain", "energy_gain", ".2f"),
)


def _cell(value: Any, fmt: str | None, integral: bool) -> str:
    if fmt is None:
        return str(value)
    if fmt == "count":
        return f"{value:.0f}" if integral else f"{value:.2f}"
    return f"{value:{fmt}}"


def table_text(rows: Iterable[CostRow]) -> str:
    """``rows`` as an aligned plain-text table: format names left-aligned, numbers right.

    Counts print as integers when every row's count in that column is whole (with
    ``batch > 1`` reads per vector can be fractional), energy and gains with two
    decimals. See :func:`compare` for an example.
    """
    rows = list(rows)
    columns = []
    for header, attr, fmt in _COLUMNS:
        values = [getattr(r, attr) for r in rows]
        integral = fmt == "count" and all(float(v).is_integer() for v in values)
        cells = [_cell(v, fmt, integral) for v in values]
        width = max([len(header), *map(len, cells)])
        align = str.ljust if fmt is None else str.rjust
        columns.append([align(header, width), *(align(c, width) for c in cells)])
    return "\n".join("  ".join(line).rstrip() for line in zip(*columns, strict=True))
