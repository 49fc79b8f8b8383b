"""Tables of typed rows (:class:`Table`), and the sweep's (:class:`SweepTable`: one row
per layer x setting x format)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterator

import numpy as np

__all__ = ["COLUMNS", "Table", "SweepTable"]

_STR = ("network", "layer", "kind", "source_dtype", "quantizer", "format")
_INT = ("rows", "cols", "weights", "levels", "K", "storage_bits")
_FLOAT = ("prune", "entropy_bits", "p0", "ratio_to_dense", "adds", "mults", "reads",
          "energy_pj", "energy_ratio")
_OPTIONAL = ("time_ms", "accuracy")  # float or None

#: The columns of a sweep, in order.
COLUMNS = ("network", "layer", "kind", "rows", "cols", "weights", "source_dtype", "prune",
           "quantizer", "levels", "format", "K", "entropy_bits", "p0", "storage_bits",
           "ratio_to_dense", "adds", "mults", "reads", "energy_pj", "energy_ratio", "time_ms",
           "accuracy")


def _typed(row: dict, where: str, cls: type[Table]) -> dict:
    """A row with every column present and of its type (ValueError naming the problem)."""
    missing = [c for c in cls.COLUMNS if c not in row]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}")
    out = {}
    try:
        for c in cls.COLUMNS:
            v = row[c]
            if c in cls.STR:
                out[c] = str(v)
            elif c in cls.INT:
                out[c] = int(v)
            elif c in cls.FLOAT:
                out[c] = float(v)
            else:
                out[c] = None if v is None or v == "" else float(v)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: column {c!r} has the invalid value {row[c]!r:.50} "
                         f"({exc})") from None
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


class Table:
    """Rows of typed columns (a subclass names them: ``COLUMNS``; ``STR``, ``INT`` and
    ``FLOAT`` columns, the others optional floats), with selection and CSV/JSON export."""

    COLUMNS: tuple[str, ...] = ()
    STR: tuple[str, ...] = ()
    INT: tuple[str, ...] = ()
    FLOAT: tuple[str, ...] = ()
    KIND = "table"

    def __init__(self, rows: list[dict] | None = None) -> None:
        self.rows: list[dict] = [_typed(r, f"row {i}", type(self))
                                 for i, r in enumerate(rows or [])]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.COLUMNS

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.rows)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return len(self) == len(other) and all(
            _same(a[c], b[c]) for a, b in zip(self.rows, other.rows, strict=True)
            for c in self.COLUMNS)

    __hash__ = None  # mutable

    # --- selection ------------------------------------------------------------------------

    def where(self, **equal) -> Table:
        """The rows whose columns equal the given values, e.g. ``where(format="cser")``.

        Raises
        ------
        ValueError
            If a keyword is not a column.
        """
        unknown = sorted(set(equal) - set(self.COLUMNS))
        if unknown:
            raise ValueError(f"unknown column(s) {unknown}; columns: "
                             f"{', '.join(self.COLUMNS)}")
        out = type(self)()
        out.rows = [r for r in self.rows if all(_same(r[k], v) for k, v in equal.items())]
        return out

    def column(self, name: str) -> np.ndarray:
        """One column as a numpy array: str columns as ``str``, integer ones as int64,
        the others as float64 (a missing time or accuracy is NaN)."""
        if name not in self.COLUMNS:
            raise ValueError(f"unknown column {name!r}; columns: {', '.join(self.COLUMNS)}")
        values = [r[name] for r in self.rows]
        if name in self.STR:
            return np.array(values, dtype=str)
        if name in self.INT:
            return np.array(values, dtype=np.int64)
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64)

    # --- export ---------------------------------------------------------------------------

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """The table as CSV (floats written exactly, a missing value as an empty cell);
        written to ``path`` when given. Returns the text."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.COLUMNS)
        for r in self.rows:
            writer.writerow(["" if r[c] is None else repr(r[c]) if isinstance(r[c], float)
                             else r[c] for c in self.COLUMNS])
        return _write(path, buf.getvalue())

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The table as JSON ``{"columns": [...], "rows": [{...}, ...]}``; written to
        ``path`` when given. Returns the text."""
        text = json.dumps({"columns": list(self.COLUMNS), "rows": self.rows}, indent=None,
                          separators=(",", ":"))
        return _write(path, text + "\n")

    @classmethod
    def read(cls, path: str | os.PathLike) -> Table:
        """A table written by :meth:`to_csv` or :meth:`to_json` (told apart by content);
        for a :class:`SweepTable`, also the rows of a sweep's incremental log (``out=``)."""
        with open(path, encoding="utf-8") as fp:
            return cls.read_text(fp.read(), where=os.fspath(path))

    @classmethod
    def read_text(cls, text: str, where: str = "table") -> Table:
        """Like :meth:`read`, from the text of the file."""
        stripped = text.lstrip()
        if stripped.startswith("{"):
            try:
                data = json.loads(stripped)
            except ValueError:
                return cls(cls._other_rows(stripped, where))
            if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
                raise ValueError(f"{where}: JSON without a 'rows' list is not a "
                                 f"{cls.KIND}")
            return cls(data["rows"])
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None or tuple(header) != cls.COLUMNS:
            raise ValueError(f"{where}: not a {cls.KIND} (expected a JSON object or CSV "
                             f"with the header {','.join(cls.COLUMNS)})")
        return cls([dict(zip(cls.COLUMNS, row, strict=False)) for row in reader if row])

    @classmethod
    def _other_rows(cls, text: str, where: str) -> list[dict]:
        raise ValueError(f"{where}: not JSON; not a {cls.KIND}")


class SweepTable(Table):
    """The result of :func:`lowentropy.sweep`: one row (a dict of :data:`COLUMNS`) per
    layer x setting x format, in layer order, then setting order, then format order.

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> net = le.Network("tiny", [le.Layer("fc", np.eye(8, dtype=np.float32))])
    >>> from lowentropy.sweep import sweep
    >>> t = sweep(net, prune=[0.5], bits=[4], formats=["dense", "cser"], workers=1,
    ...           progress=False)
    >>> len(t), t.columns[:3]
    (2, ('network', 'layer', 'kind'))
    >>> t.where(format="cser").column("ratio_to_dense").round(3)
    array([6.095])
    >>> SweepTable.read_text(t.to_csv()) == t
    True
    """


    COLUMNS, STR, INT, FLOAT = COLUMNS, _STR, _INT, _FLOAT
    KIND = "sweep table"

    def __repr__(self) -> str:
        layers = len({r["layer"] for r in self.rows})
        name = self.rows[0]["network"] if self.rows else ""
        return f"SweepTable({name!r}, {len(self)} rows, {layers} layers)"

    @classmethod
    def _other_rows(cls, text: str, where: str) -> list[dict]:
        return _log_rows(text, where)


def _log_rows(text: str, where: str) -> list[dict]:
    from ._log import parse_log

    _, done = parse_log(text, where)
    return [row for rows in done.values() for row in rows]


def _write(path, text: str) -> str:
    if path is not None:
        with open(path, "w", encoding="utf-8") as fp:
            fp.write(text)
    return text
