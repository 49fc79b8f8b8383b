"""Thread policy: how the library's kernels share the cores with other thread pools.

Everything the library decides about threads lives here: the environment defaults for the
OpenMP and OpenBLAS runtimes, the detection of thread pools loaded before the library, the
rule that picks parallel or one-thread kernels, and the work thresholds below which a
kernel runs on one thread.

Environment defaults
--------------------
After a parallel call, OpenBLAS's threads spin for about 2**28 cycles (0.1 s) and GNU
OpenMP's (libgomp: numba's ``omp`` layer, torch, MKL in torch's wheels) for 300000 rounds
before they sleep. On a machine with few cores the spinning threads take the cores that
the next computation needs: with a ``torch.mm`` and a numpy product between products, a
CSER product on 2 cores ran 4.3x slower than alone. At ``import lowentropy``, before the
library imports numpy, :data:`ENV_DEFAULTS` are set with ``os.environ.setdefault``:

- ``OMP_WAIT_POLICY=PASSIVE`` (every OpenMP runtime: GNU, LLVM, Intel),
- ``GOMP_SPINCOUNT=10000`` (GNU OpenMP: spin about 0.1 ms, then sleep),
- ``OPENBLAS_THREAD_TIMEOUT=18`` (OpenBLAS: spin 2**18 cycles, about 0.1 ms).

A value the user set is never changed. A runtime reads these variables once, when it loads,
so they govern only the runtimes that load after ``import lowentropy``. Covered:

- ``import lowentropy`` before numpy, scipy and torch: every runtime (numpy's and scipy's
  OpenBLAS, torch's OpenMP and MKL, numba's OpenMP) reads the defaults;
- ``import numpy`` (or anything that imports it) first: numpy's OpenBLAS has read its
  variables already; scipy's OpenBLAS, torch's and numba's OpenMP runtimes still read the
  defaults if they load after lowentropy;
- ``import torch`` first: torch's OpenMP runtime (and numpy's OpenBLAS, which torch
  imports) keep their spinning; numba's runtime (loaded at the first parallel kernel)
  reads the defaults;
- variables exported before Python starts (``OMP_WAIT_POLICY=PASSIVE python ...``) cover
  every order.

The variables are process-wide: child processes started afterwards inherit them.

Pools loaded before the library
-------------------------------
At import, ``threadpoolctl`` lists the OpenMP and BLAS runtimes already loaded, and the
environment they read (the values before the defaults) tells whether each one spins (see
:func:`pool_spins`). Those are the *foreign spinning pools* (:func:`foreign_spinning_pools`).

The rule
--------
The knob is :func:`set_thread_policy`, or the environment variable ``LOWENTROPY_THREADS``
read at import: ``"auto"`` (default), ``"parallel"`` or ``"serial"``.

- ``"serial"``: every kernel runs on one thread.
- ``"parallel"``: a kernel runs on numba's threads when its work is at least
  :data:`PARALLEL_MIN_WORK` (products) or :data:`PARALLEL_MIN_ELEMENTS` (compression) and
  numba has more than one thread.
- ``"auto"``: as ``"parallel"``, unless a foreign spinning OpenMP pool was loaded before
  the library: then as ``"serial"``. Measured on 2 cores with numpy and torch imported
  before lowentropy and a ``torch.mm`` and a numpy product between products
  (``benchmarks/mixed.py``): the one-thread kernels took 1.0-3.8 ms where the two-thread
  ones took 6-43 ms, waiting for a core that a spinning torch or OpenBLAS thread held. A
  spinning OpenBLAS alone does not switch: numpy is imported before lowentropy in most
  programs, its threads spin only after a multi-threaded BLAS call, and a program without
  BLAS work between products would lose half its speed. Programs that interleave numpy
  BLAS work with products, with numpy imported first, set ``LOWENTROPY_THREADS=serial``
  (or import lowentropy first).

The compression kernels (pruning, quantization) follow the same strategy.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = [
    "ENV_DEFAULTS", "ENV_KNOB", "THREAD_POLICIES", "PARALLEL_MIN_WORK", "PARALLEL_MIN_ELEMENTS",
    "Pool", "pool_spins", "foreign_spinning_pools", "thread_policy", "set_thread_policy",
    "strategy", "use_threads", "threads_for", "numba_threads", "thread_info",
]

#: Set with ``os.environ.setdefault`` at ``import lowentropy``, before numpy loads.
ENV_DEFAULTS: dict[str, str] = {
    "OMP_WAIT_POLICY": "PASSIVE",
    "GOMP_SPINCOUNT": "10000",
    "OPENBLAS_THREAD_TIMEOUT": "18",
}

#: Other variables that decide whether a runtime spins (read, never set).
_ALSO_READ = ("KMP_BLOCKTIME",)

#: The user's knob, read at import (see :func:`set_thread_policy`).
ENV_KNOB = "LOWENTROPY_THREADS"

THREAD_POLICIES = ("auto", "parallel", "serial")

#: Below this much work (about one unit per matrix entry touched, times the batch) a
#: product runs on one thread: waking the thread pool costs tens of microseconds, more on
#: a busy machine.
PARALLEL_MIN_WORK = 1 << 16

#: Compression inputs smaller than this run their kernels on one thread: the work takes
#: well under a millisecond, while a parallel region waits for every thread, and on a busy
#: 2-core machine a descheduled thread costs several milliseconds (measured: p90 of
#: pruning a 300 x 784 layer 32 ms on two threads, 0.8 ms on one).
PARALLEL_MIN_ELEMENTS = 1 << 20

#: GNU OpenMP spin counts above this count as spinning (ours is 10000, about 0.1 ms).
_GOMP_SPIN_LIMIT = 10_000
#: OpenBLAS timeouts (log2 of cycles) above this count as spinning (ours is 18).
_OPENBLAS_TIMEOUT_LIMIT = 18


@dataclass(frozen=True)
class Pool:
    """A thread pool (an OpenMP or BLAS runtime) that ``threadpoolctl`` found loaded.

    Attributes
    ----------
    user_api : str
        ``"openmp"`` or ``"blas"``.
    internal_api : str
        ``"openmp"``, ``"openblas"``, ``"mkl"``, ``"blis"``, ...
    prefix : str
        Library name prefix (``"libgomp"``, ``"libomp"``, ``"libiomp"``, ...).
    filepath : str
    num_threads : int
    threading_layer : str
        For a BLAS, the runtime its threads come from (``"pthreads"``, ``"openmp"``, ...).
    spins : bool
        Whether its threads spin after a call, judged from the environment it read.
    """

    user_api: str
    internal_api: str
    prefix: str
    filepath: str
    num_threads: int
    threading_layer: str
    spins: bool


def _gomp_spin_count(env: Mapping[str, str | None]) -> float:
    """The spin count GNU OpenMP uses under ``env`` (its ``env.c`` rules)."""
    policy = (env.get("OMP_WAIT_POLICY") or "").strip().lower()
    text = (env.get("GOMP_SPINCOUNT") or "").strip().lower()
    if text in ("infinite", "infinity"):
        return math.inf
    scale = {"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}.get(text[-1:], 1.0) if text else 1.0
    digits = text[:-1] if scale != 1.0 else text
    if digits.isdigit():
        return int(digits) * scale
    if policy == "passive":
        return 0.0
    return 3e10 if policy == "active" else 3e5


def pool_spins(info: Mapping[str, object], env: Mapping[str, str | None]) -> bool:
    """Whether the threads of a runtime (a ``threadpoolctl`` info dict) spin after a call.

    Rules, from the runtimes' documentation and sources:

    - one thread: never;
    - GNU OpenMP (``libgomp``): spin count above 10000 (``GOMP_SPINCOUNT``, else 0 under
      ``OMP_WAIT_POLICY=PASSIVE``, 300000 by default);
    - other OpenMP runtimes (LLVM ``libomp``, Intel ``libiomp``): unless
      ``OMP_WAIT_POLICY=PASSIVE`` or ``KMP_BLOCKTIME=0``;
    - OpenBLAS with its own threads: ``OPENBLAS_THREAD_TIMEOUT`` above 18 (default 28);
    - a BLAS on OpenMP threads, MKL, BLIS: no (their OpenMP runtime is a pool of its own).
    """
    threads = info.get("num_threads") or 0
    if not isinstance(threads, int) or threads <= 1:
        return False
    prefix = str(info.get("prefix", ""))
    if info.get("user_api") == "openmp":
        if prefix == "libgomp":
            return _gomp_spin_count(env) > _GOMP_SPIN_LIMIT
        passive = (env.get("OMP_WAIT_POLICY") or "").strip().lower() == "passive"
        return not (passive or (env.get("KMP_BLOCKTIME") or "").strip() == "0")
    if info.get("internal_api") == "openblas" and info.get("threading_layer") != "openmp":
        text = (env.get("OPENBLAS_THREAD_TIMEOUT") or "").strip()
        timeout = min(max(int(text), 4), 30) if text.isdigit() else 28
        return timeout > _OPENBLAS_TIMEOUT_LIMIT
    return False


def _loaded_pools(env: Mapping[str, str | None]) -> tuple[Pool, ...] | None:
    """The OpenMP and BLAS runtimes loaded now (``None`` without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # a declared dependency; without it nothing is detected
        return None
    pools = []
    for info in threadpool_info():
        pools.append(Pool(
            user_api=str(info.get("user_api", "")), internal_api=str(info.get("internal_api", "")),
            prefix=str(info.get("prefix", "")), filepath=str(info.get("filepath", "")),
            num_threads=int(info.get("num_threads") or 0),
            threading_layer=str(info.get("threading_layer", "")),
            spins=pool_spins(info, env),
        ))
    return tuple(pools)


@dataclass(frozen=True)
class _Startup:
    environ_before: dict[str, str | None]
    set_here: dict[str, str]
    pools_before: tuple[Pool, ...] | None


def _policy_from(text: str | None, source: str) -> str:
    value = (text or "auto").strip().lower()
    if value not in THREAD_POLICIES:
        raise ValueError(f"{source} must be one of {', '.join(THREAD_POLICIES)}, got {text!r}")
    return value


def _startup(environ=os.environ) -> _Startup:
    """Read the environment, list the pools loaded so far, then set the defaults."""
    names = (*ENV_DEFAULTS, *_ALSO_READ)
    before = {name: environ.get(name) for name in names}
    pools = _loaded_pools(before)
    set_here = {}
    for name, value in ENV_DEFAULTS.items():
        if name not in environ:
            environ[name] = value
            set_here[name] = value
    return _Startup(before, set_here, pools)


_STARTUP = _startup()
_policy = _policy_from(os.environ.get(ENV_KNOB), f"the environment variable {ENV_KNOB}")


def foreign_spinning_pools() -> tuple[Pool, ...]:
    """The OpenMP and OpenBLAS pools loaded before ``import lowentropy`` that spin.

    Judged from the environment at import, before the library's defaults (a runtime read
    its variables when it loaded, before that). Empty when ``threadpoolctl`` is missing.
    """
    return tuple(p for p in (_STARTUP.pools_before or ()) if p.spins)


def thread_policy() -> str:
    """The policy in force: ``"auto"``, ``"parallel"`` or ``"serial"``."""
    return _policy


def set_thread_policy(policy: str = "auto") -> str:
    """Choose how the library's kernels use threads; returns the previous policy.

    Parameters
    ----------
    policy : {"auto", "parallel", "serial"}
        ``"serial"``: one thread. ``"parallel"``: numba's threads for work above the
        thresholds. ``"auto"`` (default): ``"parallel"``, unless an OpenMP pool that spins
        was loaded before lowentropy (then ``"serial"``). The environment variable
        ``LOWENTROPY_THREADS`` sets the policy at import. The number of threads is numba's
        (``numba.set_num_threads``, ``NUMBA_NUM_THREADS``).

    Examples
    --------
    >>> import lowentropy as le
    >>> previous = le.set_thread_policy("serial")
    >>> le.set_thread_policy(previous)
    'serial'
    """
    global _policy
    value = _policy_from(policy if isinstance(policy, str) else repr(policy), "policy")
    previous, _policy = _policy, value
    return previous


def strategy() -> str:
    """``"parallel"`` or ``"serial"``: what the policy resolves to in this process."""
    if _policy != "auto":
        return _policy
    if any(p.user_api == "openmp" for p in foreign_spinning_pools()):
        return "serial"
    return "parallel"


def _numba_threads_now() -> int:
    import numba

    return numba.get_num_threads()


def use_threads(work: int) -> bool:
    """Whether a product kernel with this much work runs on numba's thread pool."""
    return (work >= PARALLEL_MIN_WORK and strategy() == "parallel"
            and _numba_threads_now() > 1)


@contextlib.contextmanager
def _one_numba_thread() -> Iterator[None]:
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@contextlib.contextmanager
def threads_for(n: int) -> Iterator[None]:
    """Within the block, numba kernels use one thread when ``n < PARALLEL_MIN_ELEMENTS``
    or when the strategy is ``"serial"`` (compression kernels over ``n`` elements).

    ``numba.set_num_threads`` is local to the calling thread, so this is safe in
    dashboards that compute in background threads.
    """
    if n >= PARALLEL_MIN_ELEMENTS and strategy() == "parallel":
        yield
        return
    with _one_numba_thread():
        yield


@contextlib.contextmanager
def numba_threads(n: int | None) -> Iterator[None]:
    """Within the block, numba uses ``n`` threads (at most ``NUMBA_NUM_THREADS``);
    ``None`` keeps the current count. For worker processes that share a machine."""
    if n is None:
        yield
        return
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def thread_info() -> dict[str, object]:
    """What the library found and decided about threads, for reports and bug reports.

    Keys: ``policy``, ``strategy``, ``numba_threads``, ``environment_before_import``
    (the variables as the user left them), ``set_by_lowentropy`` (the defaults that
    were applied), ``pools_before_import`` (list of dicts; ``None`` without
    threadpoolctl), ``foreign_spinning`` (their file paths).
    """
    pools = _STARTUP.pools_before
    return {
        "policy": _policy,
        "strategy": strategy(),
        "numba_threads": _numba_threads_now(),
        "environment_before_import": dict(_STARTUP.environ_before),
        "set_by_lowentropy": dict(_STARTUP.set_here),
        "pools_before_import": None if pools is None else [p.__dict__.copy() for p in pools],
        "foreign_spinning": [p.filepath for p in foreign_spinning_pools()],
    }

