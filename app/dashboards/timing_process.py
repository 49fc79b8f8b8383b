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
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
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


def _serve(fd: int) -> None:  # pragma: no cover - runs in the worker process
    """The worker: time each job it receives on the connection ``fd``; a message that
    arrives meanwhile (a newer job, or a cancellation) replaces the running one."""
    _die_with_parent()
    conn = Connection(fd)
    pending = None
    while True:
        try:
            message = pending if pending is not None else conn.recv()
        except (EOFError, OSError):
            return
        pending = None
        if message[0] == "cancel":
            continue
        job, source, batch, budget = message

        def check() -> None:
            nonlocal pending
            if pending is None and conn.poll():
                pending = conn.recv()
            if pending is not None:
                raise le.Cancelled("a newer timing replaced this one")

        last = [-PROGRESS_INTERVAL_S]  # when progress was last sent

        def progress(i: int, total: int, job=job, last=last) -> None:
            check()  # every step; a message at most every PROGRESS_INTERVAL_S
            now = time.monotonic()
            if i >= total or now - last[0] >= PROGRESS_INTERVAL_S:
                last[0] = now
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


#: The shortest time between two progress messages of the worker (seconds): a timing
#: takes a few hundred product rounds a second, and the bar moves at most every 0.1 s.
PROGRESS_INTERVAL_S = 0.05

#: What the worker runs: the parent's import path, then :func:`_serve` on its socket.
_WORKER = ("import json, os, sys; sys.path[:0] = json.loads(os.environ.pop("
           "'LOWENTROPY_TIMING_PATH')); from dashboards.timing_process import _serve; "
           "_serve(int(sys.argv[1]))")


class TimingProcess:
    """A worker process that times layers, stopped while the page refreshes.

    ``run(source, batch=, budget=, task=)`` (from a background thread) sends the layer and
    waits for ``(result, notes)`` as :func:`dashboards.model.time_within_limits` returns
    them; ``task.progress`` moves the bar; a cancelled ``task`` raises ``Cancelled`` at
    once. :meth:`pause` and :meth:`resume` stop and continue the worker; :meth:`close`
    kills it.
    """

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        env = {**os.environ, "LOWENTROPY_TIMING_PATH": json.dumps(sys.path)}
        # a new interpreter (not multiprocessing's spawn, which would run the parent's
        # main script again when it is one), talking over a socket of its own
        self._process = subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(theirs.fileno())], pass_fds=(theirs.fileno(),),
            env=env, stdin=subprocess.DEVNULL)
        theirs.close()
        self._conn = Connection(ours.detach())
        self._lock = threading.Lock()  # one job at a time
        self._job = 0
        self._paused = False

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

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
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(sig)

    def run(self, source: Source, *, batch: int, budget: float, task) -> Any:
        """Time ``source`` in the worker; ``(result, notes)``."""
        while not self._lock.acquire(timeout=0.05):  # an earlier run() is still waiting
            task.check()
        try:
            if not self.alive:
                raise RuntimeError("the timing process has ended")
            self._job += 1
            job = self._job
            self.resume()
            self._conn.send((job, source, int(batch), float(budget)))
            try:
                return self._wait(job, task)
            except BaseException:
                with contextlib.suppress(OSError):
                    self._conn.send(("cancel", job))  # it stops at its next step
                raise
        finally:
            self._lock.release()

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
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        self._process.wait(5)
        self._conn.close()
