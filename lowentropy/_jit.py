"""numba options in one place.

Every kernel of the project is compiled through :func:`kernel`, so the options are the
same everywhere: ``nogil`` always (dashboards run kernels in background threads), the
on-disk cache on unless ``LOWENTROPY_NUMBA_CACHE=0`` (every voila page is a new kernel
process; the cache turns a ~0.4 s compile into a ~0.1 s load), ``fastmath`` off unless
a benchmark shows a kernel gains from it, and LLVM's SLP vectorizer on only for the
kernels that ask for it (``vectorize=True``). When kernels run on threads is decided in
:mod:`lowentropy.threads`.
"""

from __future__ import annotations

import os

from numba import njit, prange
from numba.core import config
from numba.core.compiler_lock import global_compiler_lock

from .threads import use_threads  # the thread policy's rule, for the encoders that import it here

__all__ = ["kernel", "serial", "use_threads", "prange", "CACHE"]

CACHE = os.environ.get("LOWENTROPY_NUMBA_CACHE", "1") != "0"


def kernel(*, parallel: bool = False, fastmath: bool = False, vectorize: bool = False):
    """Return the project's ``njit`` decorator with the given options.

    ``vectorize=True`` compiles the kernel with LLVM's SLP (superword) vectorizer, which
    numba leaves off by default (numba issue 8705: it once miscompiled a loop). It turns
    statements on neighbouring scalars, such as eight running sums of the eight columns
    of a row of ``X``, into vector instructions. Only the kernels that ask for it get it,
    and each of them is checked against its float64 reference in the tests.
    """
    jit = njit(nogil=True, cache=CACHE, parallel=parallel, fastmath=fastmath)
    return (lambda fn: _with_slp(jit(fn))) if vectorize else jit


def _with_slp(dispatcher):
    """Make ``dispatcher`` compile with the SLP vectorizer on (a load from numba's cache
    is unaffected: it loads what was compiled so). Under ``NUMBA_DISABLE_JIT=1`` the
    plain Python function comes back as it is."""
    plain = getattr(dispatcher, "compile", None)
    if plain is None:  # the JIT is off: a Python function, nothing to compile
        return dispatcher

    def compile(sig):
        with global_compiler_lock:  # numba compiles under this (reentrant) lock
            before = config.SLP_VECTORIZE
            config.SLP_VECTORIZE = 1
            try:
                return plain(sig)
            finally:
                config.SLP_VECTORIZE = before

    dispatcher.compile = compile
    dispatcher.lowentropy_slp = True
    return dispatcher


def serial(fn):
    """The same kernel compiled without threads (``prange`` runs as ``range``).

    For small inputs, where waking the thread pool costs more than the work. ``fn`` is a
    kernel (or its Python function); the copy gets its own name, so that the two compiled
    versions are cached apart. Under ``NUMBA_DISABLE_JIT=1`` it is the Python function.
    """
    import types

    original = fn
    fn = getattr(fn, "py_func", fn)
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                              fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_serial"
    twin.__module__ = fn.__module__
    twin.__doc__ = fn.__doc__
    compiled = njit(nogil=True, cache=CACHE)(twin)
    return _with_slp(compiled) if getattr(original, "lowentropy_slp", False) else compiled

