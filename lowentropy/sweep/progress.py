"""A one-line progress bar on stderr, shared by ``lowentropy report`` and sweeps."""

from __future__ import annotations

import sys
import time

__all__ = ["ProgressBar"]


class ProgressBar:
    """``bar(done, total, name)`` redraws ``[####----] done/total unit, elapsed  name`` on
    stderr; nothing when ``enabled`` is false.

    Examples
    --------
    >>> bar = ProgressBar(False)
    >>> bar(1, 2, "fc1")
    """

    def __init__(self, enabled: bool, unit: str = "layers") -> None:
        self.enabled = enabled
        self.unit = unit
        self.start = time.perf_counter()

    def __call__(self, done: int, total: int, name: str) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / max(total, 1))
        bar = "#" * filled + "-" * (width - filled)
        elapsed = time.perf_counter() - self.start
        end = "\n" if done == total else ""
        print(f"\r[{bar}] {done}/{total} {self.unit}, {elapsed:.1f} s  {name[:30]:<30}",
              end=end, file=sys.stderr, flush=True)
