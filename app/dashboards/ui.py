"""What every dashboard shares: colours, error messages in the page, background work.

Exceptions raised in widget callbacks are invisible in voila; :class:`Messages` turns them
into a readable line in the page (and keeps the traceback in a collapsed detail), and
:class:`Background` runs slow work in a thread with a progress bar, dropping stale results
when the user moved on.
"""

from __future__ import annotations

import functools
import html
import threading
import traceback
from collections.abc import Callable
from typing import Any

import ipywidgets as w

__all__ = ["FORMAT_COLORS", "format_color", "Messages", "Background", "card", "fmt_bytes"]

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


def fmt_bytes(nbytes: float) -> str:
    """``1536`` → ``'1.5 kB'`` (decimal units)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(nbytes) < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.3g} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")


def card(title: str, value: str, note: str = "") -> str:
    """HTML of a small figure card (title, big value, small note)."""
    return (
        '<div style="display:inline-block;min-width:7.5em;margin:2px 10px 2px 0;'
        'padding:4px 10px;border-left:3px solid #0072b2;background:#f6f8fa">'
        f'<div style="font-size:11px;color:#555">{html.escape(title)}</div>'
        f'<div style="font-size:18px;font-weight:600">{html.escape(value)}</div>'
        f'<div style="font-size:11px;color:#777">{html.escape(note)}</div></div>'
    )


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
        """Show an error: its one-line message, and the traceback folded away."""
        if isinstance(exc, BaseException):
            self.last_error = exc
            head = f"{type(exc).__name__}: {exc}"
            detail = "".join(traceback.format_exception(exc))
        else:
            head, detail = str(exc), ""
        fold = (f"<details><summary>details</summary><pre style='font-size:11px'>"
                f"{html.escape(detail)}</pre></details>") if detail else ""
        self.widget.value = (
            '<div class="lowentropy-error" style="color:#842029;background:#f8d7da;'
            f'padding:6px 10px;border-radius:4px">⚠ {html.escape(head)}{fold}</div>'
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


class Background:
    """Run slow work in a thread, one job at a time, with a progress bar.

    ``start(job, done)`` runs ``job(progress)`` in a thread, where ``progress(i, total)``
    moves the bar; then ``done(result)`` is called, unless another ``start`` came in
    the meantime (the older result is dropped). Errors go to ``messages``.
    ``synchronous=True`` runs jobs in the caller's thread (tests, notebooks).
    """

    def __init__(self, messages: Messages, description: str = "measuring",
                 synchronous: bool = False) -> None:
        self.messages = messages
        self.synchronous = synchronous
        self.bar = w.IntProgress(value=0, min=0, max=1, description=description,
                                 layout=w.Layout(width="320px", visibility="hidden"))
        self._generation = 0
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, job: Callable[[Callable[[int, int], None]], Any],
              done: Callable[[Any], None]) -> None:
        with self._lock:
            self._generation += 1
            generation = self._generation

        def progress(i: int, total: int) -> None:
            if generation == self._generation:
                self.bar.max = max(int(total), 1)
                self.bar.value = min(int(i), self.bar.max)

        def run() -> None:
            try:
                result = job(progress)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                if generation == self._generation:
                    self.messages.error(exc)
                    self.bar.layout.visibility = "hidden"
                return
            if generation == self._generation:
                self.bar.layout.visibility = "hidden"
                try:
                    done(result)
                except Exception as exc:  # noqa: BLE001
                    self.messages.error(exc)

        self.bar.value = 0
        self.bar.layout.visibility = "visible"
        if self.synchronous:
            run()
        else:
            self.thread = threading.Thread(target=run, daemon=True)
            self.thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running job (if any) has finished (for tests)."""
        if self.thread is not None:
            self.thread.join(timeout)
