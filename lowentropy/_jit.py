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

__all__ = ["kernel", "serial", "use_threads", "prange", "CACHE", "PARALLEL_MIN_WORK"]

CACHE = os.environ.get("LOWENTROPY_NUMBA_CACHE", "1") != "0"

#: Below this much work (about one unit per matrix entry touched) a kernel runs on one
#: thread: waking the thread pool costs tens of microseconds, more on a busy machine.
PARALLEL_MIN_WORK = 1 << 16


def kernel(*, parallel: bool = False, fastmath: bool = False):
    """Return the project's ``njit`` decorator with the given options."""
    return njit(nogil=True, cache=CACHE, parallel=parallel, fastmath=fastmath)


def serial(fn):
    """The same kernel compiled without threads (``prange`` runs as ``range``).

    For small inputs, where waking the thread pool costs more than the work. ``fn`` is a
    kernel (or its Python function); the copy gets its own name, so that the two compiled
    versions are cached apart. Under ``NUMBA_DISABLE_JIT=1`` it is the Python function.
    """
    import types

    fn = getattr(fn, "py_func", fn)
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                              fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_serial"
    twin.__module__ = fn.__module__
    twin.__doc__ = fn.__doc__
    return njit(nogil=True, cache=CACHE)(twin)


def use_threads(work: int) -> bool:
    """Whether a kernel with this much work should run on the thread pool."""
    import numba

    return work >= PARALLEL_MIN_WORK and numba.get_num_threads() > 1
