"""A preheated voila kernel stays alive until its page connects.

voila's pool keeps the layer explorer executed in a waiting kernel, and never culls a
kernel while it waits in the pool. Once a page takes it, the server's culler sees a kernel
that has said nothing since it was preheated (minutes or hours ago, well past
``cull_idle_timeout``) and no page connected yet: should its periodic check fall in the
few seconds between the request and the page's websocket, it shuts the kernel down, and
the page stays without figures (its widgets' kernel no longer exists). On a server left
idle for longer than the timeout, that is whenever the check (once a minute) falls within
the seconds a page takes to load voila's scripts: more often the busier the machine.

:func:`keep_alive_until_taken` keeps the waiting kernel from looking idle: a thread sends
a message on one of the page's widgets every :data:`INTERVAL_S` seconds (any message of
the kernel counts as activity for the server) until voila hands the kernel to a page,
which it announces on its request-info websocket (``voila/query/<kernel id>``, the one
``voila.utils.wait_for_request`` listens to), then once more and stops. A page that was
taken and then closed is culled as any other.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["INTERVAL_S", "query_url", "keep_alive_until_taken", "watch"]

#: Seconds between two messages of a waiting kernel: well below the culler's idle timeout
#: (300 s in ``app/voila.json``). ``LOWENTROPY_PREHEAT_BEAT_S`` overrides it (tests).
INTERVAL_S = 60.0


def query_url(env: Mapping[str, str] = os.environ) -> str | None:
    """voila's request-info websocket for this kernel, or ``None`` outside a preheated
    voila kernel (a kernel started for a page, JupyterLab, a script).

    Examples
    --------
    >>> query_url({"VOILA_PREHEAT": "True", "VOILA_APP_PORT": "8866",
    ...            "VOILA_SERVER_URL": "/", "VOILA_KERNEL_ID": "k1"})
    'ws://127.0.0.1:8866/voila/query/k1'
    >>> query_url({"VOILA_PREHEAT": "False", "VOILA_KERNEL_ID": "k1"}) is None
    True
    """
    kernel_id = env.get("VOILA_KERNEL_ID")
    if env.get("VOILA_PREHEAT") != "True" or not kernel_id:
        return None
    protocol = env.get("VOILA_WS_PROTOCOL", "ws")
    ip = env.get("VOILA_APP_IP", "127.0.0.1")
    port = env.get("VOILA_APP_PORT", "8866")
    base = env.get("VOILA_WS_BASE_URL", env.get("VOILA_SERVER_URL", "/"))
    return f"{protocol}://{ip}:{port}{base}voila/query/{kernel_id}"


async def watch(url: str, beat: Callable[[], None], interval: float) -> str | None:
    """Call ``beat()`` every ``interval`` seconds until the websocket at ``url`` sends its
    message (a page took the kernel), then once more; returns the message, or ``None`` if
    the socket cannot be opened or closes first (the kernel is then left as voila left
    it)."""
    import websockets

    try:
        async with websockets.connect(url, open_timeout=5) as socket:
            while True:
                try:
                    message = await asyncio.wait_for(socket.recv(), interval)
                except TimeoutError:
                    beat()
                    continue
                beat()
                return message if isinstance(message, str) else message.decode()
    except (TimeoutError, OSError, websockets.exceptions.WebSocketException):
        return None


def keep_alive_until_taken(widget: Any, url: str | None = None,
                           interval: float | None = None) -> threading.Thread | None:
    """In a preheated voila kernel, start the thread of :func:`watch` with messages on
    ``widget`` (a custom message the page ignores); ``None`` elsewhere."""
    url = query_url() if url is None else url
    if url is None:
        return None
    if interval is None:
        interval = float(os.environ.get("LOWENTROPY_PREHEAT_BEAT_S", INTERVAL_S))

    def beat() -> None:
        widget.send({"lowentropy": "waiting for a page"})

    thread = threading.Thread(target=lambda: asyncio.run(watch(url, beat, interval)),
                              name="lowentropy-preheat", daemon=True)
    thread.start()
    return thread
