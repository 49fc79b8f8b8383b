"""A preheated voila kernel keeps saying something until a page takes it (the culler
would otherwise shut it down between the page's request and its websocket)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

from dashboards import preheat
from dashboards.ui import dashboard_page


async def _serve(send_after: float | None, beats: list[float], connected: asyncio.Event):
    """A stand-in for voila's request-info websocket: sends the request's information
    ``send_after`` seconds after the kernel connects (never if ``None``)."""
    from websockets.asyncio.server import serve

    async def handler(socket):
        connected.set()
        if send_after is None:
            await socket.wait_closed()
            return
        await asyncio.sleep(send_after)
        beats.append(-1.0)  # where the page took the kernel, among the beats
        await socket.send(json.dumps({"VOILA_REQUEST_URL": "http://h/voila/render/x"}))
        await socket.wait_closed()

    return await serve(handler, "127.0.0.1", 0)


def test_a_waiting_kernel_beats_until_a_page_takes_it_then_once_more():
    beats: list[float] = []

    async def run():
        connected = asyncio.Event()
        server = await _serve(0.5, beats, connected)
        port = server.sockets[0].getsockname()[1]
        message = await preheat.watch(f"ws://127.0.0.1:{port}/voila/query/k1",
                                      lambda: beats.append(time.monotonic()), 0.05)
        server.close()
        return message

    message = asyncio.run(run())
    assert json.loads(message) == {"VOILA_REQUEST_URL": "http://h/voila/render/x"}
    taken = beats.index(-1.0)
    assert 2 <= taken <= 11, beats  # every 0.05 s for 0.5 s
    assert len(beats) == taken + 2  # one beat when taken, then none


def test_no_server_no_beat():
    beats = []

    async def run():
        from websockets.asyncio.server import serve

        async def handler(socket):  # pragma: no cover - never connected
            await socket.wait_closed()

        server = await serve(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        return await preheat.watch(f"ws://127.0.0.1:{port}/voila/query/k1",
                                   lambda: beats.append(1), 0.05)

    assert asyncio.run(run()) is None
    assert beats == []


def test_only_a_preheated_voila_kernel_starts_the_thread(monkeypatch):
    monkeypatch.delenv("VOILA_PREHEAT", raising=False)
    assert preheat.keep_alive_until_taken(object()) is None
    monkeypatch.setenv("VOILA_PREHEAT", "False")
    monkeypatch.setenv("VOILA_KERNEL_ID", "k1")
    assert preheat.keep_alive_until_taken(object()) is None
    monkeypatch.setenv("VOILA_PREHEAT", "True")
    monkeypatch.setenv("VOILA_APP_PORT", "1")
    assert preheat.query_url() == "ws://127.0.0.1:1/voila/query/k1"


def test_the_thread_sends_custom_messages_on_the_widget_until_taken(monkeypatch):
    sent: list[dict] = []
    page = dashboard_page("test", *[__import__("ipywidgets").HTML() for _ in range(3)])
    monkeypatch.setattr(page, "send", sent.append)
    beats: list[float] = []
    ready = threading.Event()
    holder: dict = {}

    def server_thread():
        async def main():
            connected = asyncio.Event()
            server = await _serve(0.3, beats, connected)
            holder["port"] = server.sockets[0].getsockname()[1]
            ready.set()
            await asyncio.sleep(1.5)
            server.close()

        asyncio.run(main())

    threading.Thread(target=server_thread, daemon=True).start()
    assert ready.wait(10)
    thread = preheat.keep_alive_until_taken(
        page, f"ws://127.0.0.1:{holder['port']}/voila/query/k1", interval=0.05)
    thread.join(10)
    assert not thread.is_alive()
    assert len(sent) >= 3 and all(m == {"lowentropy": "waiting for a page"} for m in sent)


def test_the_beat_is_well_within_the_culler_timeout():
    config = json.loads((Path(__file__).parent.parent / "app" / "voila.json").read_text())
    timeout = config["MappingKernelManager"]["cull_idle_timeout"]
    interval = config["MappingKernelManager"]["cull_interval"]
    assert preheat.INTERVAL_S + interval < timeout / 2
