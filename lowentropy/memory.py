"""A memory budget: work that would not fit is refused before it allocates.

Encoding a matrix allocates arrays whose size depends on the matrix's values, not only
on its shape: CER on unquantized weights pads every row up to the rank of its rarest
value, about ``m·K`` groups, so a 600×600 matrix of distinct values needs gigabytes.
Each step of the encoders states what it is about to allocate; above the budget it
raises :class:`MemoryBudgetError` with the amount needed, before anything is allocated,
instead of letting the operating system kill the process.

The budget is, in order: the value given to :func:`set_memory_budget`, the environment
variable ``LOWENTROPY_MEMORY_BUDGET`` (bytes, or a size such as ``"4 GB"``), or half of
the machine's physical memory.
"""

from __future__ import annotations

import os
import re

__all__ = [
    "MemoryBudgetError", "memory_budget", "set_memory_budget", "check_memory", "parse_size",
    "format_size", "encoding_bytes", "BUDGET_ENV",
]

#: The environment variable holding the budget.
BUDGET_ENV = "LOWENTROPY_MEMORY_BUDGET"

_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20,
          "mib": 2**20, "g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40,
          "tib": 2**40}
_override: int | None = None


class MemoryBudgetError(MemoryError):
    """Raised before an allocation that would exceed the memory budget.

    Attributes
    ----------
    needed : int
        Bytes the refused step would allocate.
    budget : int
        The budget in bytes when it was refused.
    """

    def __init__(self, message: str, needed: int, budget: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.budget = budget


def parse_size(size: int | float | str) -> int:
    """Bytes from a number or a text such as ``"512 MB"``, ``"1.5G"`` or ``"2GiB"``
    (powers of 1024).

    Examples
    --------
    >>> parse_size("1.5 GB"), parse_size(1024), parse_size("64k")
    (1610612736, 1024, 65536)
    """
    if isinstance(size, bool):
        raise TypeError("a memory size must be a number of bytes or a text like '4 GB'")
    if isinstance(size, (int, float)):
        value = float(size)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*",
                             str(size))
        if match is None or match.group(2).lower() not in _UNITS:
            raise ValueError(f"not a memory size: {size!r:.60} (examples: 1000000, '512 MB', "
                             "'4 GB')")
        value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"a memory size must be positive and finite, got {size!r:.60}")
    return int(value)


def format_size(nbytes: float) -> str:
    """A size for messages: ``"1.7 GB"``, ``"512 MB"``, ``"12 kB"``, ``"80 B"``.

    Examples
    --------
    >>> format_size(1.7 * 2**30), format_size(80)
    ('1.7 GB', '80 B')
    """
    for unit, scale in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if nbytes >= scale:
            value = nbytes / scale
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{int(nbytes)} B"


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 8 * 2**30


def memory_budget() -> int:
    """The budget in bytes (see the module's description for where it comes from).

    Examples
    --------
    >>> memory_budget() > 0
    True
    """
    if _override is not None:
        return _override
    text = os.environ.get(BUDGET_ENV, "").strip()
    if text:
        try:
            return parse_size(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"environment variable {BUDGET_ENV}: {exc}") from None
    return _physical_memory() // 2


def set_memory_budget(size: int | float | str | None) -> int | None:
    """Set the budget for this process (``None`` returns to the environment variable or
    the default); returns the previous value set here, or None.

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> previous = set_memory_budget("100 MB")
    >>> W = np.arange(360_000, dtype=np.float32).reshape(600, 600)  # all values distinct
    >>> le.CER.from_dense(W)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    lowentropy.memory.MemoryBudgetError: CER of a 600×600 matrix with 360,000 distinct \
values pads every row up to the rank of its rarest value (... groups) needs ..., over \
the memory budget of 100 MB. Quantize the weights to few values first, or raise the \
budget (LOWENTROPY_MEMORY_BUDGET or lowentropy.set_memory_budget).
    >>> set_memory_budget(previous)
    104857600
    """
    global _override
    previous = _override
    _override = None if size is None else parse_size(size)
    return previous


def check_memory(nbytes: int, what: str, hint: str = "") -> None:
    """Refuse a step that would allocate more than the budget.

    Parameters
    ----------
    nbytes : int
        What the step is about to allocate.
    what : str
        The step, for the message (``"sorting the values of a 600×600 matrix"``).
    hint : str
        What the user can do instead (a sentence; the budget's settings are always named).

    Raises
    ------
    MemoryBudgetError
        If ``nbytes`` exceeds :func:`memory_budget`.

    Examples
    --------
    >>> check_memory(10, "a tiny step")
    >>> previous = set_memory_budget(100)
    >>> check_memory(2**30, "sorting the values")
    Traceback (most recent call last):
        ...
    lowentropy.memory.MemoryBudgetError: sorting the values needs 1.0 GB, over the memory \
budget of 100 B. Raise the budget (LOWENTROPY_MEMORY_BUDGET or \
lowentropy.set_memory_budget).
    >>> _ = set_memory_budget(previous)
    """
    budget = memory_budget()
    if nbytes <= budget:
        return
    advice = f"{hint.rstrip('.')}, or raise" if hint else "Raise"
    raise MemoryBudgetError(
        f"{what} needs {format_size(nbytes)}, over the memory budget of "
        f"{format_size(budget)}. "
        f"{advice} the budget ({BUDGET_ENV} or lowentropy.set_memory_budget).",
        int(nbytes), budget)


def encoding_bytes(stats, format) -> int:
    """Bytes that encoding the matrix ``stats`` describes in ``format`` holds at its peak:
    the format's arrays in their in-memory dtypes (packed codes and bitstreams in the
    words that hold them), plus one rank per stored entry while a
    CER/CSER encoder sorts the rows. Computed from the statistics alone, so a caller can
    tell in advance which formats fit the budget.

    Parameters
    ----------
    stats : lowentropy.Stats
        From :func:`lowentropy.stats`.
    format : str or Format class
        A name in ``lowentropy.FORMATS`` or the class.

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> W = np.arange(360_000, dtype=np.float32).reshape(600, 600)  # all values distinct
    >>> st = le.stats(W)
    >>> format_size(encoding_bytes(st, "cer")), format_size(encoding_bytes(st, "csr"))
    ('830 MB', '2.1 MB')
    """
    from .formats import get_format

    cls = get_format(format) if isinstance(format, str) else format
    total = cls.memory_bytes_for(stats) + cls._scratch_bytes_of(stats)
    if cls.name in ("cer", "cser", "efr"):
        total += 8 * stats.N
    return int(total)
