"""numba options in one place.

Every kernel of the project is compiled through :func:`kernel`, so the options are the
same everywhere: ``nogil`` always (dashboards run kernels in background threads), the
on-disk cache on unless ``LOWENTROPY_NUMBA_CACHE=0`` (every voila page is a new kernel
process; the cache turns a ~0.4 s compile into a ~0.1 s load), ``fastmath`` off unless
a benchmark shows a kernel gains from it, and LLVM's SLP vectorizer on only for the
kernels that ask for it (``vectorize=True``). When kernels run on threads is decided in
:mod:`lowentropy.threads`.

numba keys a cached kernel on the source file that defines it, not on the helpers it
inlines from other modules: after a change to ``_sums.py`` alone, a kernel of ``cer.py``
would load its old machine code. Every kernel's cache entry is therefore also keyed on a
digest of all of the package's sources (:data:`SOURCES`): any change of the package
recompiles every kernel once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from numba import njit, prange
from numba.core import config
from numba.core.compiler_lock import global_compiler_lock

from .threads import use_threads  # the thread policy's rule, for the encoders that import it here

__all__ = ["kernel", "serial", "use_threads", "prange", "CACHE", "SOURCES"]

CACHE = os.environ.get("LOWENTROPY_NUMBA_CACHE", "1") != "0"


def sources_digest(root: Path) -> str:
    """SHA-256 of the ``*.py`` files under ``root`` (their paths and contents)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


#: Digest of the package's sources, part of every kernel's key in numba's on-disk cache.
SOURCES = sources_digest(Path(__file__).resolve().parent)


def _keyed_on_sources(dispatcher):
    """Key ``dispatcher``'s on-disk cache on :data:`SOURCES` as well as on its own file
    (numba's index is read with the stamp it was written with; another stamp is a miss).
    Without the cache, or under ``NUMBA_DISABLE_JIT=1``, ``dispatcher`` is unchanged."""
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = (cache_file._source_stamp, SOURCES)
    return dispatcher


def kernel(*, parallel: bool = False, fastmath: bool = False, vectorize: bool = False):
    """Return the project's ``njit`` decorator with the given options.

    ``vectorize=True`` compiles the kernel with LLVM's SLP (superword) vectorizer, which
    numba leaves off by default (numba issue 8705: it once miscompiled a loop). It turns
    statements on neighbouring scalars, such as eight running sums of the eight columns
    of a row of ``X``, into vector instructions. Only the kernels that ask for it get it,
    and each of them is checked against its float64 reference in the tests.
    """
    jit = njit(nogil=True, cache=CACHE, parallel=parallel, fastmath=fastmath)
    if vectorize:
        return lambda fn: _with_slp(_keyed_on_sources(jit(fn)))
    return lambda fn: _keyed_on_sources(jit(fn))


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
    compiled = _keyed_on_sources(njit(nogil=True, cache=CACHE)(twin))
    return _with_slp(compiled) if getattr(original, "lowentropy_slp", False) else compiled

