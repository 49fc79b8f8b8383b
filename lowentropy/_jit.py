"""numba options in one place.

Every kernel of the project is compiled through :func:`kernel`, so the options are the
same everywhere: ``nogil`` always (dashboards run kernels in background threads), the
on-disk cache on unless ``LOWENTROPY_NUMBA_CACHE=0`` (every voila page is a new kernel
process; the cache turns a ~0.4 s compile into a ~0.1 s load), ``fastmath`` off unless
a benchmark shows a kernel gains from it.
"""

from __future__ import annotations

import os

from numba import njit, prange

__all__ = ["kernel", "prange", "CACHE"]

CACHE = os.environ.get("LOWENTROPY_NUMBA_CACHE", "1") != "0"


def kernel(*, parallel: bool = False, fastmath: bool = False):
    """Return the project's ``njit`` decorator with the given options."""
    return njit(nogil=True, cache=CACHE, parallel=parallel, fastmath=fastmath)
