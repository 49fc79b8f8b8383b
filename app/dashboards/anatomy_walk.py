"""The data behind the format anatomy dashboard: small matrices and the dot-product walk.

Everything here is plain data and numpy, without widgets, so that it can be checked on its
own:

- :data:`SPEC_EXAMPLE` and :data:`SPEC_PADDING_EXAMPLE`, the worked examples of SPEC §2;
- :func:`random_matrix`, a seeded small low-entropy matrix of integers;
- :func:`parse_matrix`, a matrix typed in as text;
- :func:`groups_of`, the groups that CER or CSER arrays (``f.arrays()``) describe;
- :func:`build_steps`, the product ``y = W x`` of SPEC §3 cut into one :class:`Step` per
  group (plus the ``ω_0 · Σ x`` term when ``ω_0 ≠ 0``), and :func:`progress`, the state
  after the first steps.

The steps count operations the way ``f.op_counts()`` does (SPEC §5): a group of ``c``
columns costs ``c`` additions for its sum, one multiplication by ``ω_k − ω_0`` and one
addition into ``y_i`` (an empty CER group too: it is multiplied by a sum of zero); when
``ω_0 ≠ 0``, ``S = Σ_j x_j`` costs ``n`` additions and ``ω_0 · S`` one multiplication, and
every row starts with one addition of ``ω_0 · S``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "SPEC_EXAMPLE", "SPEC_PADDING_EXAMPLE", "MAX_ROWS", "MAX_COLS", "random_matrix",
    "parse_matrix", "Group", "groups_of", "Step", "build_steps", "Progress", "progress",
]

#: The worked example of SPEC §2 (4 × 12, values 0, 2, 3, 4).
SPEC_EXAMPLE = np.array([
    [0, 3, 0, 2, 4, 0, 0, 2, 3, 4, 0, 4],
    [4, 4, 0, 0, 0, 4, 0, 0, 4, 4, 0, 4],
    [4, 0, 3, 4, 0, 0, 0, 4, 0, 0, 4, 4],
    [0, 0, 0, 4, 4, 4, 0, 3, 4, 4, 0, 0],
], dtype=np.float64)
SPEC_EXAMPLE.flags.writeable = False

#: SPEC §2's padding case: row 1 replaced, so that CER needs empty groups.
SPEC_PADDING_EXAMPLE = SPEC_EXAMPLE.copy()
SPEC_PADDING_EXAMPLE[1] = [3, 3, 0, 0, 0, 3, 0, 0, 0, 0, 0, 2]
SPEC_PADDING_EXAMPLE.flags.writeable = False

#: Largest matrix the dashboard walks through (it is for teaching, one cell at a time).
MAX_ROWS = 16
MAX_COLS = 24

# Non-zero values a random matrix draws from: small integers, easy to add up in one's head.
_CANDIDATES = np.array([v for v in range(-9, 10) if v != 0], dtype=np.float64)


def random_matrix(rows: int, cols: int, *, values: int = 3, zero_share: float = 0.5,
                  seed: int = 0) -> np.ndarray:
    """A small low-entropy matrix of integers: zeros and a few shared values.

    ``round(zero_share · rows · cols)`` entries are 0; the others take ``values`` distinct
    non-zero integers from -9..9 (fewer if there are fewer cells left), each at least once,
    with counts drawn so that the first is about twice as frequent as the second, and so
    on. With ``zero_share = 0`` the most frequent value ``ω_0`` is not 0.

    Parameters
    ----------
    rows, cols : int
        Shape, at least 1.
    values : int
        Number of distinct non-zero values, 1 to 18.
    zero_share : float
        Share of zeros, in [0, 1].
    seed : int
        Seed of ``numpy.random.default_rng``: same arguments, same matrix.

    Returns
    -------
    numpy.ndarray
        ``rows × cols``, float64.

    Examples
    --------
    >>> W = random_matrix(4, 6, values=2, zero_share=0.5, seed=1)
    >>> W.shape, int((W == 0).sum()), len(set(W[W != 0].tolist()))
    ((4, 6), 12, 2)
    """
    rows, cols, values = int(rows), int(cols), int(values)
    if rows < 1 or cols < 1:
        raise ValueError(f"rows and cols must be at least 1, got {rows} × {cols}")
    if not 1 <= values <= _CANDIDATES.size:
        raise ValueError(f"values must be between 1 and {_CANDIDATES.size}, got {values}")
    zero_share = float(zero_share)
    if not 0.0 <= zero_share <= 1.0:
        raise ValueError(f"zero_share must be between 0 and 1, got {zero_share}")
    rng = np.random.default_rng(seed)
    size = rows * cols
    zeros = int(round(zero_share * size))
    rest = size - zeros
    chosen = rng.choice(_CANDIDATES, size=values, replace=False)[:min(values, rest)]
    weights = 0.5 ** np.arange(chosen.size)
    counts = 1 + rng.multinomial(rest - chosen.size, weights / weights.sum()) if rest else []
    cells = np.concatenate([np.zeros(zeros), np.repeat(chosen, counts)])
    return rng.permutation(cells).reshape(rows, cols)


def parse_matrix(text: str) -> np.ndarray:
    """A matrix typed as text: one row per line, numbers separated by spaces or commas.

    Python/numpy-style brackets (``[[0, 1], [2, 0]]``) are accepted too. At most
    :data:`MAX_ROWS` rows and :data:`MAX_COLS` columns.

    Raises
    ------
    ValueError
        Naming the problem: no numbers, a token that is not a number (with its row and
        position), a non-finite number, rows of different lengths, too large a matrix.

    Examples
    --------
    >>> parse_matrix("0 2 0\\n3, 0, 2").tolist()
    [[0.0, 2.0, 0.0], [3.0, 0.0, 2.0]]
    >>> parse_matrix("[[1, 0], [0, 1]]").tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    if not isinstance(text, str):
        raise TypeError(f"the matrix text must be a string, got {type(text).__name__}")
    if "[" in text or "]" in text:
        lines = re.findall(r"\[([^\[\]]*)\]", text)
        outside = re.sub(r"\[[^\[\]]*\]", "", text)
        if text.count("[") != text.count("]") or not lines:
            raise ValueError("unbalanced brackets: write rows as [1, 0, 2] or one per line")
        if re.search(r"[^\s,;\[\]]", outside):
            raise ValueError("with brackets, every number must be inside a row [ … ]")
    else:
        lines = text.splitlines()
    lines = [line.strip() for line in lines if line.strip().strip(",;")]
    if not lines:
        raise ValueError("type at least one row of numbers (rows on lines, numbers "
                         "separated by spaces or commas)")
    rows: list[list[float]] = []
    for r, line in enumerate(lines):
        tokens = [t for t in re.split(r"[\s,;]+", line) if t]
        row = []
        for c, token in enumerate(tokens):
            try:
                value = float(token)
            except ValueError:
                raise ValueError(f"row {r}, entry {c}: {token!r} is not a number") from None
            if not np.isfinite(value):
                raise ValueError(f"row {r}, entry {c}: {token!r} is not a finite number")
            row.append(value + 0.0)  # -0.0 is 0.0
        rows.append(row)
    lengths = [len(row) for row in rows]
    if len(set(lengths)) > 1:
        bad = next(r for r, k in enumerate(lengths) if k != lengths[0])
        raise ValueError(f"row {bad} has {lengths[bad]} numbers but row 0 has {lengths[0]}; "
                         "every row needs the same count")
    if len(rows) > MAX_ROWS or lengths[0] > MAX_COLS:
        raise ValueError(f"the matrix is {len(rows)} × {lengths[0]}; the walk shows at most "
                         f"{MAX_ROWS} × {MAX_COLS}")
    return np.array(rows, dtype=np.float64)


@dataclass(frozen=True)
class Group:
    """One group of CER/CSER: the columns of one row that hold one shared value.

    Attributes
    ----------
    index : int
        ``g``, the group's position in ``omega_ptr`` (and ``omega_idx`` for CSER).
    row : int
        ``i``, the row that owns the group (``row_ptr[i] <= g < row_ptr[i+1]``).
    rank : int
        ``k``: the group's value is ``omega[k]`` (CER: ``g - row_ptr[i] + 1``; CSER:
        ``omega_idx[g]``).
    start, stop : int
        Its columns are ``col_idx[start:stop]`` (``omega_ptr[g]``, ``omega_ptr[g+1]``).
    """

    index: int
    row: int
    rank: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        """Number of columns in the group."""
        return self.stop - self.start

    @property
    def empty(self) -> bool:
        """An empty group: CER's padding for a rank absent from the row."""
        return self.stop == self.start


def _check_arrays(arrays: Mapping[str, np.ndarray]) -> None:
    if not isinstance(arrays, Mapping):
        raise TypeError(f"arrays must be the dict of f.arrays(), got {type(arrays).__name__}")
    missing = [k for k in ("omega", "col_idx", "omega_ptr", "row_ptr") if k not in arrays]
    if missing:
        raise ValueError(f"arrays of CER or CSER are needed (f.arrays()); missing {missing}")


def groups_of(arrays: Mapping[str, np.ndarray]) -> list[Group]:
    """The groups that CER or CSER arrays describe, in storage order.

    Parameters
    ----------
    arrays : dict
        ``f.arrays()`` of a :class:`lowentropy.CER` (no ``omega_idx``: the rank follows
        from the position in the row) or :class:`lowentropy.CSER`.

    Examples
    --------
    >>> import lowentropy as le
    >>> f = le.CER.from_dense(SPEC_PADDING_EXAMPLE)
    >>> [(g.row, g.rank, g.size) for g in groups_of(f.arrays())][:6]
    [(0, 1, 3), (0, 2, 2), (0, 3, 2), (1, 1, 0), (1, 2, 3), (1, 3, 1)]
    """
    _check_arrays(arrays)
    omega_ptr = np.asarray(arrays["omega_ptr"], dtype=np.int64)
    row_ptr = np.asarray(arrays["row_ptr"], dtype=np.int64)
    omega_idx = arrays.get("omega_idx")
    out = []
    for i in range(row_ptr.size - 1):
        for g in range(int(row_ptr[i]), int(row_ptr[i + 1])):
            rank = int(omega_idx[g]) if omega_idx is not None else g - int(row_ptr[i]) + 1
            out.append(Group(g, i, rank, int(omega_ptr[g]), int(omega_ptr[g + 1])))
    return out


@dataclass(frozen=True)
class Step:
    """One step of the product ``y = W x`` in CER/CSER (SPEC §3).

    Attributes
    ----------
    kind : str
        ``"offset"``: ``S = Σ_j x_j`` and ``ω_0 · S``, once (only when ``ω_0 ≠ 0``);
        ``"row"``: row ``i`` starts at ``y_i = ω_0 · S`` (only when ``ω_0 ≠ 0``);
        ``"group"``: one group: add its ``x`` entries, multiply once by ``ω_k − ω_0``,
        add the product to ``y_i``.
    row : int
        ``i`` (-1 for the offset step).
    group : Group or None
        The group of a ``"group"`` step.
    value : float
        ``ω_k`` of the group (``ω_0`` for the other kinds).
    columns : tuple of int
        The columns ``j`` whose ``x_j`` are added (all of them for the offset step).
    terms : tuple of float
        Those ``x_j``.
    partial : float
        Their sum (``S`` for the offset and row steps).
    factor : float
        What the sum is multiplied by: ``ω_k − ω_0`` (``ω_0`` for offset and row steps).
    product : float
        ``factor · partial``: what the step adds to ``y_i`` (the offset step adds nothing
        to a row; its product is the ``ω_0 · S`` every row starts from).
    y : float
        ``y_i`` after the step (NaN for the offset step).
    adds, mults : int
        Additions and multiplications the step costs.
    """

    kind: str
    row: int
    group: Group | None
    value: float
    columns: tuple[int, ...]
    terms: tuple[float, ...]
    partial: float
    factor: float
    product: float
    y: float
    adds: int
    mults: int


def _result_dtype(omega: np.ndarray, x: np.ndarray) -> np.dtype:
    dtype = np.result_type(omega.dtype, x.dtype)
    return dtype if dtype.kind == "f" and dtype.itemsize >= 4 else np.dtype(np.float64)


def build_steps(arrays: Mapping[str, np.ndarray], x: ArrayLike) -> list[Step]:
    """The product ``y = W x`` of CER/CSER arrays, one step per group (SPEC §3).

    The arithmetic follows the library's kernels (same dtype, ``ω_k − ω_0`` and
    ``ω_0 · Σ x`` formed the same way), so the last ``y`` of every row equals
    ``(f @ x)[i]`` up to the order of additions inside a group; rows that own no group
    (and see no step when ``ω_0 = 0``) have ``y_i = 0``. The ``adds`` and ``mults`` of
    all steps add up to ``f.op_counts()``.

    Parameters
    ----------
    arrays : dict
        ``f.arrays()`` of a :class:`lowentropy.CER` or :class:`lowentropy.CSER`.
    x : array_like
        Input vector of length ``n`` (the number of columns).

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> f = le.CSER.from_dense(np.array([[0., 2., 2., 0.], [3., 0., 2., 0.]]))
    >>> steps = build_steps(f.arrays(), [1., 2., 3., 4.])
    >>> [(s.row, s.value, s.columns, s.partial, s.y) for s in steps]
    [(0, 2.0, (1, 2), 5.0, 10.0), (1, 2.0, (2,), 3.0, 6.0), (1, 3.0, (0,), 1.0, 9.0)]
    >>> sum(s.adds for s in steps), f.op_counts().adds
    (7, 7.0)
    """
    _check_arrays(arrays)
    omega = np.asarray(arrays["omega"])
    col_idx = np.asarray(arrays["col_idx"], dtype=np.int64)
    x = np.asarray(x)
    if x.ndim != 1 or x.dtype.kind not in "biuf":
        raise ValueError(f"x must be a 1-D real vector, got {x.dtype} of shape {x.shape}")
    if col_idx.size and int(col_idx.max()) >= x.size:
        raise ValueError(f"x has {x.size} entries but the matrix has a column "
                         f"{int(col_idx.max())}")
    if not np.isfinite(x).all():
        raise ValueError("x must be finite")
    dtype = _result_dtype(omega, x)
    xs = x.astype(dtype)
    m = np.asarray(arrays["row_ptr"]).size - 1
    omega0 = omega[0] if omega.size else dtype.type(0)
    deltas = (omega.astype(np.float64) - float(omega0)).astype(dtype)
    steps: list[Step] = []
    offset = dtype.type(0)
    if omega0 != 0:
        S = xs.sum(dtype=dtype)
        offset = dtype.type(omega0.astype(dtype) * S)
        steps.append(Step("offset", -1, None, float(omega0), tuple(range(xs.size)),
                          tuple(xs.tolist()), float(S), float(omega0), float(offset),
                          float("nan"), int(xs.size), 1))
    by_row: dict[int, list[Group]] = {}
    for group in groups_of(arrays):
        by_row.setdefault(group.row, []).append(group)
    for i in range(m):
        y = dtype.type(0)
        if omega0 != 0:
            y = dtype.type(y + offset)
            steps.append(Step("row", i, None, float(omega0), (), (), float(steps[0].partial),
                              float(omega0), float(offset), float(y), 1, 0))
        for group in by_row.get(i, []):
            cols = col_idx[group.start:group.stop]
            partial = dtype.type(0)
            for j in cols:
                partial = dtype.type(partial + xs[j])
            product = dtype.type(deltas[group.rank] * partial)
            y = dtype.type(y + product)
            steps.append(Step("group", i, group, float(omega[group.rank]),
                              tuple(cols.tolist()), tuple(xs[cols].tolist()), float(partial),
                              float(deltas[group.rank]), float(product), float(y),
                              group.size + 1, 1))
    return steps


@dataclass(frozen=True)
class Progress:
    """Where a walk stands after its first ``count`` steps.

    Attributes
    ----------
    count : int
        Steps done.
    y : numpy.ndarray
        ``y`` so far: final for rows done, running for the current row, 0 for the rest.
    row : int
        The current row (-1 before the first row, ``m`` when all are done).
    adds, mults : int
        Operations so far.
    step : Step or None
        The last step done (``None`` before the first).
    """

    count: int
    y: np.ndarray
    row: int
    adds: int
    mults: int
    step: Step | None


def progress(steps: list[Step], count: int, m: int) -> Progress:
    """The state of the walk after ``steps[:count]`` for a matrix of ``m`` rows.

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> f = le.CER.from_dense(np.array([[0., 2.], [3., 0.]]))  # row 1 pads rank 1
    >>> steps = build_steps(f.arrays(), [1., 1.])
    >>> p = progress(steps, 2, 2)
    >>> p.y.tolist(), p.adds, p.mults, p.row, p.step.group.empty
    ([2.0, 0.0], 3, 2, 1, True)
    >>> progress(steps, len(steps), 2).y.tolist()
    [2.0, 3.0]
    """
    if not 0 <= count <= len(steps):
        raise ValueError(f"count must be between 0 and {len(steps)}, got {count}")
    y = np.zeros(m)
    for step in steps[:count]:
        if step.kind != "offset":
            y[step.row] = step.y
    last = steps[count - 1] if count else None
    if count == len(steps):
        row = m
    else:
        row = last.row if last is not None else -1
    return Progress(count, y, row, sum(s.adds for s in steps[:count]),
                    sum(s.mults for s in steps[:count]), last)
