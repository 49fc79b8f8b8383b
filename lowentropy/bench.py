"""Side-by-side timing: candidates run interleaved, after warm-up, medians compared.

These machines are shared and noisy; timing one candidate after another lets a burst of
load hit one of them only. Here every round runs every candidate once, in a rotating
order, so that load spreads over all of them, and only medians and ratios are quoted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Timing", "interleaved"]


@dataclass(frozen=True)
class Timing:
    """Times of one candidate in seconds."""

    name: str
    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def ratio_to(self, other: Timing) -> float:
        """``other.median / self.median``: how many times faster than ``other``."""
        return other.median / self.median


def interleaved(
    candidates: Mapping[str, Callable[[], object]],
    *,
    rounds: int = 7,
    warmup: int = 1,
    min_time: float = 0.0,
) -> dict[str, Timing]:
    """Time every candidate ``rounds`` times, interleaved, after ``warmup`` calls each.

    Parameters
    ----------
    candidates : mapping of name to a callable without arguments
    rounds : int
        Timed calls per candidate. Round ``r`` starts at candidate ``r mod len``.
    warmup : int
        Untimed calls per candidate first (compilation, caches).
    min_time : float
        A timed call shorter than this is repeated within its slot and the mean per call
        kept, so that very fast candidates are not timed at the clock's resolution.

    Examples
    --------
    >>> t = interleaved({"a": lambda: sum(range(100)), "b": lambda: None}, rounds=3)
    >>> sorted(t), len(t["a"].times)
    (['a', 'b'], 3)
    """
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            candidates[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            fn = candidates[name]
            calls = 0
            start = time.perf_counter()
            while True:
                fn()
                calls += 1
                elapsed = time.perf_counter() - start
                if elapsed >= min_time:
                    break
            times[name].append(elapsed / calls)
    return {name: Timing(name, tuple(times[name])) for name in names}
