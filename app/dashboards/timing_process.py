"""Live timing in a process of its own, stopped while the page refreshes.

The layer explorer times ``W @ x`` in every format once the controls rest. Encoding a
large layer in seven formats takes a second or more, in numba kernels that cannot stop
midway (40-180 ms each on AlexNet fc6), and the products stream the layer through memory.
Run in the dashboard's own process, a slider move that came meanwhile shared the two
cores, the caches and the memory bandwidth with them: its refresh took 0.35-0.55 s instead
of 0.25-0.3 s. Lowering the timing thread's CPU priority did not help enough (the memory
traffic stays).

So the timing runs in a worker process, and the page stops that process (``SIGSTOP``) the
moment a refresh starts and lets it go on (``SIGCONT``) when the refresh is drawn: a
refresh never competes with a timing. A timing that a newer one replaced stops at its next
step (between two encodings, or two rounds of products) and its result is dropped.

The worker is started once, by the thread that makes the :class:`TimingProcess` (the
dashboard's main thread): on Linux it is killed when that thread's process dies, even while
stopped. Where ``SIGSTOP`` does not exist (Windows), :func:`available` is false and the
dashboards time in their own process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

import lowentropy as le

__all__ = ["TimingProcess", "available"]

#: ``(codes, codebook)`` of a quantized matrix, or the matrix itself: what the worker
#: times (the codes are a quarter of a float32 matrix to send).
Source = tuple[np.ndarray, np.ndarray] | np.ndarray


def available() -> bool:
    """Whether processes can be stopped and continued here (POSIX)."""
    return hasattr(signal, "SIGSTOP")


def _die_with_parent() -> None:
    """Linux: ask for SIGKILL when the parent thread ends (it works on a stopped process;
    a stopped worker never reads the end of its pipe)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before the request
            os._exit(0)


def _time_source(source: Source, batch: int, budget: float, check: Callable[[], None],
                 progress: Callable[[int, int], None]):
    from .model import time_within_limits

    if isinstance(source, tuple):
        q = le.Quantized(*source)
        W, stats = q.to_dense(), le.stats(q)
    else:
        W, stats = source, le.stats(source)
    return time_within_limits(W, stats, batch=batch, budget=budget, progress=progress,
                              check=check)


def _serve(conn, current) -> None:  # pragma: no cover - runs in the worker process
    """The worker: time each job it receives, unless a newer one replaced it."""
    _die_with_parent()
    while True:
        try:
            job, source, batch, budget = conn.recv()
        except (EOFError, OSError):
            return

        def check(job=job) -> None:
            if current.value != job:
                raise le.Cancelled("a newer timing replaced this one")

        def progress(i: int, total: int, job=job) -> None:
            check()
            conn.send((job, "progress", (i, total)))

        try:
            conn.send((job, "done", _time_source(source, batch, budget, check, progress)))
        except le.Cancelled:
            conn.send((job, "cancelled", None))
        except Exception as exc:  # noqa: BLE001 - handed to the dashboard, shown there
            try:
                conn.send((job, "error", exc))
            except Exception:  # noqa: BLE001 - an exception that does not pickle
                conn.send((job, "error", RuntimeError(f"{type(exc).__name__}: {exc}")))


class TimingProcess:
    """A worker process that times layers, stopped while the page refreshes.

    ``run(source, batch=, budget=, task=)`` (from a background thread) sends the layer and
    waits for ``(result, notes)`` as :func:`dashboards.model.time_within_limits` returns
    them; ``task.progress`` moves the bar; a cancelled ``task`` raises ``Cancelled`` at
    once. :meth:`pause` and :meth:`resume` stop and continue the worker; :meth:`close`
    kills it.
    """

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._current = ctx.Value("q", 0, lock=False)
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child, self._current), daemon=True,
                                    name="lowentropy-timing")
        self._process.start()
        child.close()
        self._lock = threading.Lock()  # one job at a time
        self._paused = False

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def pause(self) -> None:
        """Stop the worker where it is (a refresh is starting)."""
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Let the worker go on."""
        if self._paused:
            self._paused = False
            self._signal(signal.SIGCONT)

    def _signal(self, sig: int) -> None:
        pid = self._process.pid
        if pid is not None and self._process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def run(self, source: Source, *, batch: int, budget: float, task) -> Any:
        """Time ``source`` in the worker; ``(result, notes)``."""
        with self._lock:
            if not self.alive:
                raise RuntimeError("the timing process has ended")
            job = self._current.value + 1
            self._current.value = job  # the job running in the worker stops at its next step
            self.resume()
            self._conn.send((job, source, int(batch), float(budget)))
            try:
                return self._wait(job, task)
            finally:
                if self._current.value == job:
                    self._current.value = job + 1  # cancelled or failed: let it stop

    def _wait(self, job: int, task) -> Any:
        while True:
            task.check()
            if not self._conn.poll(0.02):
                if not self.alive:
                    raise RuntimeError("the timing process has ended")
                continue
            got, kind, value = self._conn.recv()
            if got != job:
                continue  # what an earlier, replaced job sent
            if kind == "progress":
                task.progress(*value)
            elif kind == "done":
                return value
            elif kind == "error":
                raise value
            else:
                raise le.Cancelled("the timing was replaced")

    def close(self) -> None:
        """Kill the worker (``SIGKILL`` ends it even while stopped)."""
        if self._process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGKILL)
        self._process.join(5)
        self._conn.close()
