"""A server left idle past its culler's timeout still gives the first page a working
kernel: the preheated kernel keeps saying something while it waits in voila's pool
(:mod:`dashboards.preheat`), so the culler does not shut it down between the page's
request and the page's websocket.

The server here culls after ``CULL_S`` seconds (checked every second) and the waiting
kernel speaks every ``BEAT_S``; the page is opened once the pool's kernel has waited
longer than ``CULL_S``, and voila's script reaches it ``SLOW_PAGE_S`` seconds late, as on
a busy machine. Without the beat the culler shut the kernel down as soon as the
page took it, before the page connected, and the page stayed without figures.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from browser import VoilaServer, block_outside_requests, kernel_pids

pytestmark = pytest.mark.browser

CULL_S = 6
BEAT_S = 1
#: How much later than the page's request voila's script arrives.
SLOW_PAGE_S = 4


@pytest.fixture()
def culling_server(tmp_path):
    server = VoilaServer(tmp_path / "voila.log",
                         args=[f"--MappingKernelManager.cull_idle_timeout={CULL_S}",
                               "--MappingKernelManager.cull_interval=1"],
                         env={"LOWENTROPY_PREHEAT_BEAT_S": str(BEAT_S)})
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _log(server) -> str:
    return server.log_path.read_text(errors="replace")


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _wait_until_preheated(server, timeout: float = 180) -> None:
    """Until the pool's kernel has run the notebook: one kernel, which used less than
    0.1 s of CPU in each of three seconds in a row."""
    deadline, quiet, last = time.monotonic() + timeout, 0, None
    while quiet < 3:
        assert time.monotonic() < deadline, _log(server)[-3000:]
        time.sleep(1)
        pids = kernel_pids(server.proc.pid)
        ticks = _cpu_ticks(next(iter(pids))) if len(pids) == 1 else None
        idle = ticks is not None and last is not None and ticks - last < 10
        quiet, last = (quiet + 1 if idle else 0), ticks


def test_the_first_page_after_a_long_idle_gets_a_living_kernel(page, culling_server):
    _wait_until_preheated(culling_server)
    time.sleep(CULL_S + 4)  # the waiting kernel is now older than the culler's timeout
    block_outside_requests(page, culling_server.url)

    def slow_scripts(route):  # a busy machine: the page connects seconds after its request
        time.sleep(SLOW_PAGE_S)
        route.continue_()

    page.route("**/voila/static/voila.js", slow_scripts)
    page.goto(f"{culling_server.url}/voila/render/layer_explorer.ipynb",
              wait_until="domcontentloaded", timeout=120_000)
    try:
        page.wait_for_function("""() => {
            const gd = document.querySelector('.js-plotly-plot');
            return gd && gd.data && gd.data.some(t => t.name === 'col_idx' && t.y);
        }""", timeout=90_000)
    except Exception as exc:
        raise AssertionError("no figure; voila's log:\n" + _log(culling_server)[-4000:]) \
            from exc
    log = _log(culling_server)
    taken = re.search(r"Using pre-heated kernel: ([0-9a-f-]+)", log)
    assert taken, log[-3000:]
    assert f"({taken.group(1)})" not in log  # never culled ("Culling 'idle' kernel … (id)")
