"""A real voila server for the browser tests, and helpers to drive its pages.

The server is started once per test session (a fixture in ``conftest.py``) on a free
loopback port, with ``app/`` as its working directory (where ``voila.json`` is), exactly
as the README's main command starts it. Pages are driven with playwright in Debian's
chromium (``/usr/bin/chromium``; playwright's own browser download is not used).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "tests" / "screenshots"

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VoilaServer:
    """``python -m voila . --port=P`` in ``app/``; ``url`` is its base address."""

    def __init__(self, log_path: Path, args: Sequence[str] = (),
                 env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        # typed paths: the project and the temporary folder (where the tests write files)
        allowed = os.pathsep.join([str(ROOT), tempfile.gettempdir()])
        env = {**os.environ, "LOWENTROPY_MAX_UPLOAD_MB": "8",
               "LOWENTROPY_ALLOWED_DIRS": allowed, **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voila", ".", "--no-browser", f"--port={self.port}",
             "--Voila.ip=127.0.0.1", "--ServerApp.port_retries=0", *args],
            cwd=ROOT / "app", stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )

    def wait_ready(self, timeout: float = 90) -> None:
        """Poll a static file (polling a notebook would start a kernel per request)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"voila exited with {self.proc.returncode}; log:\n"
                                   + self.log_path.read_text(errors="replace")[-3000:])
            try:
                with urllib.request.urlopen(self.url + "/voila/static/voila.js", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"voila did not answer within {timeout} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


def process_tree() -> dict[int, int]:
    """pid → parent pid of every process (one pass over ``/proc``)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
    return parents


def kernel_pids(server_pid: int, parents: dict[int, int] | None = None) -> set[int]:
    pids = set()
    for pid, ppid in (process_tree() if parents is None else parents).items():
        try:
            if ppid == server_pid and b"ipykernel" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.add(pid)
        except OSError:
            continue
    return pids


def block_outside_requests(page, base_url: str) -> None:
    """Abort every request that does not go to the test server (voila asks a CDN for a
    font; this machine has no outside network)."""

    def route(r):
        url = r.request.url
        if url.startswith(base_url) or url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            r.abort()

    page.route("**/*", route)


def open_dashboard(page, server: VoilaServer, notebook: str, timeout_ms: int = 120_000):
    """Open a dashboard and wait until its plotly figure is drawn."""
    block_outside_requests(page, server.url)
    page.goto(f"{server.url}/voila/render/{notebook}", wait_until="domcontentloaded",
              timeout=timeout_ms)
    page.wait_for_selector(".js-plotly-plot", timeout=timeout_ms)
    return page


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def run_async(coro):
    """``asyncio.run(coro)`` in a thread of its own: once a test has used pytest-playwright's
    sync API, an event loop keeps running in the main thread and ``asyncio.run`` refuses."""
    import asyncio
    import threading

    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
