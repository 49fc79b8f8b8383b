"""What every dashboard shares: colours, error messages in the page, background work.

Exceptions raised in widget callbacks are invisible in voila; :class:`Messages` turns them
into a readable line in the page (and keeps the traceback in a collapsed detail), and
:class:`Runner` runs slow work in a thread with a progress bar; the next request cancels
the running job, which checks for it in its loop, and stale results are dropped.
"""

from __future__ import annotations

import functools
import html
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import ipywidgets as w

import lowentropy as le

from .model import fmt_bytes

__all__ = ["FORMAT_COLORS", "format_color", "Messages", "Runner", "Task", "Cancelled", "card",
           "accuracy_card",
           "fmt_bytes", "add_trace", "dashboard_page", "figure_widget", "main_layout",
           "row_layout"]

#: One colour per format, the same in every dashboard (colour-blind-safe palette).
FORMAT_COLORS = {
    "dense": "#7f7f7f",
    "csr": "#e69f00",
    "cer": "#0072b2",
    "cser": "#009e73",
    "scipy_csr": "#cc79a7",
    "entropy floor": "#d55e00",
}

_EXTRA = ["#56b4e9", "#f0e442", "#000000"]


def format_color(name: str) -> str:
    """The colour of a format (a new registered format gets a stable spare colour)."""
    if name in FORMAT_COLORS:
        return FORMAT_COLORS[name]
    return _EXTRA[sum(map(ord, name)) % len(_EXTRA)]


def card(title: str, value: str, note: str = "") -> str:
    """HTML of a small figure card (title, big value, small note)."""
    return (
        '<div style="display:inline-block;min-width:7.5em;margin:2px 10px 2px 0;'
        'padding:4px 10px;border-left:3px solid #0072b2;background:#f6f8fa">'
        f'<div style="font-size:11px;color:#555">{html.escape(title)}</div>'
        f'<div style="font-size:18px;font-weight:600">{html.escape(value)}</div>'
        f'<div style="font-size:11px;color:#777">{html.escape(note)}</div></div>'
    )


def accuracy_card(accuracy: Any, scope: str = "") -> str:
    """The test-accuracy card of a :class:`dashboards.retraining.Accuracy`: the compressed
    accuracy, or one-shot → retrained side by side when the recipe retrains; ``scope``
    says what was compressed (e.g. ``"this layer"``).

    Examples
    --------
    >>> from dashboards.retraining import Accuracy
    >>> "28.2% → 95.1%" in accuracy_card(Accuracy(0.951, 0.282, 0.951))
    True
    """
    where = f"{scope}; " if scope else ""
    if accuracy.retrained is None:
        return card("test accuracy", f"{accuracy.one_shot:.1%}",
                    f"{where}uncompressed {accuracy.uncompressed:.1%}")
    return card("test accuracy: one-shot → retrained",
                f"{accuracy.one_shot:.1%} → {accuracy.retrained:.1%}",
                f"{where}uncompressed {accuracy.uncompressed:.1%}")


def main_layout() -> w.Layout:
    """The layout of a dashboard's main column (cards, messages, figure): it takes the
    width beside the controls, and goes below them when less than 560 px are left."""
    return w.Layout(flex="1 1 560px", min_width="0")


def row_layout() -> w.Layout:
    """The layout of the row holding the controls and the main column (it wraps)."""
    return w.Layout(flex_flow="row wrap", width="100%", align_items="flex-start")


def dashboard_page(name: str, title: w.Widget, controls: w.Widget, main: w.Widget,
                   *below: w.Widget) -> w.VBox:
    """A dashboard's outermost widget: the title, then the controls beside the main column
    (which goes below them when the page is narrow), then ``below``; its figures follow
    its width (:class:`dashboards.fit.FitFigures`). CSS classes: ``lowentropy-dashboard``
    and ``lowentropy-{name}``. In a preheated voila kernel, the page keeps the kernel from
    being culled before a page connects (:mod:`dashboards.preheat`)."""
    from .fit import DASHBOARD_CLASS, FitFigures
    from .preheat import keep_alive_until_taken

    page = w.VBox([title, w.HBox([controls, main], layout=row_layout()), *below,
                   FitFigures()])
    page.add_class(DASHBOARD_CLASS)
    page.add_class(f"lowentropy-{name}")
    keep_alive_until_taken(page)
    return page


def figure_widget(fig: Any) -> Any:
    """The ``FigureWidget`` of a complete figure, sized by its container: plotly's
    ``responsive`` option redraws it at its container's width on every window ``resize``
    event (which :class:`dashboards.fit.FitFigures` sends when the dashboard's width
    changes). Under voila it loads plotly's code from one URL per page
    (:mod:`dashboards.plotly_bundle`)."""
    from .plotly_bundle import figure_class

    # tick labels may reach past the figure's edge (they never do with the dashboards'
    # margins): plotly.js otherwise measures every tick label of every axis on each
    # update to hide those that would (about a tenth of the explorer's redraw)
    fig.update_xaxes(ticklabeloverflow="allow")
    fig.update_yaxes(ticklabeloverflow="allow")
    widget = figure_class()(fig)
    widget._config = {**widget._config, "responsive": True, "displaylogo": False}
    return widget


def add_trace(fig: Any, keys: dict[str, int], key: str, trace: Any, **where: Any) -> None:
    """Add ``trace`` to ``fig`` (``row=``, ``col=``, … as ``fig.add_trace``) and remember
    its position under ``key``: traces are then addressed by name (``fig.data[keys[key]]``),
    never by counting.

    Examples
    --------
    >>> import plotly.graph_objects as go
    >>> fig, keys = go.Figure(), {}
    >>> add_trace(fig, keys, "floor", go.Scatter(x=[1], y=[2]))
    >>> add_trace(fig, keys, "bars", go.Bar(x=[1], y=[3]))
    >>> fig.data[keys["bars"]].type
    'bar'
    """
    if key in keys:
        raise ValueError(f"the figure already has a trace named {key!r}")
    keys[key] = len(fig.data)
    fig.add_trace(trace, **where)


class Messages:
    """A place in the page for errors and notes; ``guard`` wraps callbacks.

    Examples
    --------
    >>> m = Messages()
    >>> @m.guard
    ... def broken(change=None):
    ...     raise ValueError("bits must be at least 2")
    >>> broken()
    >>> "bits must be at least 2" in m.widget.value
    True
    """

    def __init__(self) -> None:
        self.widget = w.HTML(value="", layout=w.Layout(width="100%"))
        self.widget.add_class("lowentropy-messages")
        self.last_error: BaseException | None = None

    def clear(self) -> None:
        self.widget.value = ""
        self.last_error = None

    def info(self, text: str) -> None:
        self.widget.value = f'<div style="color:#055160">{html.escape(text)}</div>'

    def error(self, exc: BaseException | str) -> None:
        """Show an error as its one-line message; the traceback goes to the server's log
        (the kernel's standard error), never to the page."""
        if isinstance(exc, BaseException):
            self.last_error = exc
            head = f"{type(exc).__name__}: {exc}"
            if sys.__stderr__ is not None:
                traceback.print_exception(exc, file=sys.__stderr__)
        else:
            head = str(exc)
        self.widget.value = (
            '<div class="lowentropy-error" style="color:#842029;background:#f8d7da;'
            f'padding:6px 10px;border-radius:4px">⚠ {html.escape(head)}</div>'
        )

    def guard(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a callback so that an exception becomes a message instead of vanishing."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                self.error(exc)
                return None

        wrapper.guarded = True  # type: ignore[attr-defined]  # tests check every callback
        return wrapper


#: Raised inside a job by :meth:`Task.check` (and by ``Task.progress``) once a newer start,
#: or :meth:`Runner.cancel`, has cancelled it: the library's own, which retraining raises
#: when its ``cancelled()`` answers true, so either way the runner drops the job quietly.
Cancelled = le.Cancelled


class Task:
    """What a running job sees: ``progress(i, total)`` moves the bar, ``cancelled`` says
    whether the job is still wanted, ``check()`` raises :class:`Cancelled` when not.

    ``progress`` checks too, so a job that reports progress in its loop stops at the next
    report. ``wait(seconds)`` sleeps, returning early (``True``) when cancelled.

    Examples
    --------
    >>> t = Task()
    >>> t.progress(1, 2); t.cancelled
    False
    >>> t.cancel()
    >>> t.check()
    Traceback (most recent call last):
        ...
    lowentropy.networks.training.Cancelled: a newer request replaced this one
    """

    def __init__(self, on_progress: Callable[[int, int], None] | None = None) -> None:
        self._event = threading.Event()
        self._on_progress = on_progress

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        self._event.set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job is no longer wanted."""
        if self._event.is_set():
            raise Cancelled("a newer request replaced this one")

    def progress(self, i: int, total: int, *_: Any) -> None:
        """Move the progress bar to ``i`` of ``total`` (extra arguments, such as a layer
        name, are ignored), then :meth:`check`."""
        self.check()
        if self._on_progress is not None:
            self._on_progress(i, total)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; ``True`` when cancelled meanwhile."""
        return self._event.wait(seconds)


#: The shortest time between two moves of a :class:`Runner`'s progress bar (seconds).
BAR_INTERVAL_S = 0.1


class Runner:
    """Slow work in a background thread, one job at a time, that the next request cancels.

    ``start(job, done)`` cancels the running job (if any) and runs ``job(task)`` in a
    thread once the previous job has stopped; ``task`` is a :class:`Task`: the job calls
    ``task.progress(i, total)`` (moves the bar) or ``task.check()`` in its loop, and both
    raise :class:`Cancelled` once the job is no longer wanted. When the job finishes and no
    newer start came, ``done(result)`` is called (in the worker thread); the result of a
    cancelled or replaced job is dropped. Errors go to ``messages``; ``Cancelled`` is
    silent.

    ``start(..., delay=s)`` waits ``s`` seconds before starting (debounce): a start or
    :meth:`cancel` within that time replaces the job before it costs anything.
    ``synchronous=True`` runs jobs at once in the caller's thread, without delay (tests,
    notebooks).

    Examples
    --------
    >>> r = Runner(Messages(), synchronous=True)
    >>> got = []
    >>> r.start(lambda task: [task.progress(i, 3) for i in range(1, 4)] and 42, got.append)
    >>> got, r.bar.value, r.bar.max
    ([42], 3, 3)
    """

    def __init__(self, messages: Messages, description: str = "working",
                 synchronous: bool = False) -> None:
        self.messages = messages
        self.synchronous = synchronous
        self.bar = w.IntProgress(value=0, min=0, max=1, description=description,
                                 layout=w.Layout(width="320px", visibility="hidden"))
        self._lock = threading.Lock()
        self._task: Task | None = None
        self.thread: threading.Thread | None = None
        self._shown: tuple[Task | None, float] = (None, 0.0)  # the bar's last move
        #: Jobs started, finished (``done`` called), cancelled and failed (for tests).
        self.counts = {"started": 0, "done": 0, "cancelled": 0, "failed": 0}

    @property
    def busy(self) -> bool:
        """A job is waiting or running in the background."""
        return self.thread is not None and self.thread.is_alive()

    def cancel(self) -> None:
        """Cancel the waiting or running job (its result will be dropped)."""
        with self._lock:
            if self._task is not None:
                self._task.cancel()
                self._task = None
        self.bar.layout.visibility = "hidden"

    def start(self, job: Callable[[Task], Any], done: Callable[[Any], None], *,
              delay: float = 0.0) -> None:
        """Cancel the current job and run ``job(task)``; then ``done(result)``."""
        with self._lock:
            if self._task is not None:
                self._task.cancel()
            task = Task(lambda i, total: self._show(task, i, total))
            self._task = task
            previous = self.thread
            self.counts["started"] += 1
        if self.synchronous:
            self._run(task, job, done, None, 0.0)
            return
        self.thread = threading.Thread(target=self._run, args=(task, job, done, previous,
                                                               float(delay)), daemon=True)
        self.thread.start()

    def _current(self, task: Task) -> bool:
        return self._task is task and not task.cancelled

    def _show(self, task: Task, i: int, total: int) -> None:
        """Move the bar, at most every :data:`BAR_INTERVAL_S` (the first and the last
        report always): every change is a message to the page and a redraw there, and a
        live timing reports a few hundred product rounds a second."""
        if not self._current(task):
            return
        total = max(int(total), 1)
        value = min(int(i), total)
        now = time.monotonic()
        if (value < total and task is self._shown[0]
                and now - self._shown[1] < BAR_INTERVAL_S):
            return
        self._shown = (task, now)
        self.bar.max = total
        self.bar.value = value
        self.bar.layout.visibility = "visible"

    def _finish(self, task: Task) -> bool:
        """Whether ``task`` is still wanted; it is no longer the running one after this."""
        with self._lock:
            current = self._current(task)
            if current:
                self._task = None
        if current:
            self.bar.layout.visibility = "hidden"
        return current

    def _run(self, task: Task, job: Callable[[Task], Any], done: Callable[[Any], None],
             previous: threading.Thread | None, delay: float) -> None:
        if previous is not None:
            previous.join()  # cancelled: it stops at its next check
        if delay > 0 and task.wait(delay):
            self.counts["cancelled"] += 1
            return
        try:  # the bar shows at the job's first progress report: quick jobs never flash it
            task.check()
            result = job(task)
        except Cancelled:
            self.counts["cancelled"] += 1
            return
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.counts["failed"] += 1
            if self._finish(task):
                self.messages.error(exc)
            return
        if not self._finish(task):
            self.counts["cancelled"] += 1
            return
        try:
            done(result)
            self.counts["done"] += 1
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.counts["failed"] += 1
            self.messages.error(exc)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the background job (if any) has finished (for tests)."""
        thread = self.thread
        if thread is not None:
            thread.join(timeout)
