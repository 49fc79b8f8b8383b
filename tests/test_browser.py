"""The dashboards in a real browser (Debian's chromium) against a real voila server.

Each test saves a screenshot under ``tests/screenshots/``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from browser import ROOT, free_port, open_dashboard, screenshot

pytestmark = pytest.mark.browser

DASHBOARDS = ["layer_explorer.ipynb", "network_overview.ipynb", "format_anatomy.ipynb",
              "entropy_map.ipynb"]


def storage_total(page) -> float:
    """Sum of the stacked storage bars (bytes) as plotly holds them in the page."""
    return page.evaluate("""() => {
        const gd = document.querySelector('.js-plotly-plot');
        const arrays = ['values','col_idx','row_ptr','omega','omega_idx','omega_ptr'];
        let total = 0;
        for (const t of gd.data) if (arrays.includes(t.name)) for (const v of t.y) total += v;
        return total;
    }""")


def test_layer_explorer_renders_and_follows_the_pruning_slider(page, voila_server):
    open_dashboard(page, voila_server, "layer_explorer.ipynb")
    page.wait_for_function("""() => {
        const gd = document.querySelector('.js-plotly-plot');
        return gd && gd.data.some(t => t.name === 'col_idx' && t.y && t.y.length > 0);
    }""", timeout=60_000)
    before = storage_total(page)
    screenshot(page, "layer_explorer")
    handle = page.locator(".widget-slider .noUi-handle").first  # the pruning slider
    handle.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(f"""() => {{
        const gd = document.querySelector('.js-plotly-plot');
        const arrays = ['values','col_idx','row_ptr','omega','omega_idx','omega_ptr'];
        let total = 0;
        for (const t of gd.data) if (arrays.includes(t.name)) for (const v of t.y) total += v;
        return total < {before};
    }}""", timeout=30_000)
    assert storage_total(page) < before
    # once the slider rests, the live timing (in its worker process) fills the time panel
    page.wait_for_function("""() => {
        const gd = document.querySelector('.js-plotly-plot');
        const bars = gd.data.find(t => t.name === 'measured');
        return bars && bars.x && bars.x.length >= 7;
    }""", timeout=60_000)
    screenshot(page, "layer_explorer_pruned")


def test_a_broken_model_file_shows_a_message(page, voila_server, tmp_path):
    open_dashboard(page, voila_server, "layer_explorer.ipynb")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage that is not a model")
    page.locator(".widget-text input").first.fill(str(broken))
    page.get_by_role("button", name="load", exact=True).click()
    message = page.locator(".lowentropy-error")
    message.wait_for(timeout=30_000)
    assert "broken.onnx" in message.inner_text()
    screenshot(page, "layer_explorer_error")


@pytest.mark.parametrize("notebook", DASHBOARDS[1:])
def test_every_dashboard_renders(page, voila_server, notebook):
    if not (ROOT / "app" / notebook).exists():
        pytest.fail(f"app/{notebook} is missing")
    open_dashboard(page, voila_server, notebook)
    assert page.locator(".lowentropy-error").count() == 0
    screenshot(page, notebook.removesuffix(".ipynb"))


def test_the_readme_main_command_serves_the_explorer_and_stops_cleanly():
    """What `python3 tasks.py app` runs after its set-up: voila in app/ on a free port."""
    sys.path.insert(0, str(ROOT))
    try:
        import tasks
    finally:
        sys.path.pop(0)
    port = free_port()
    cmd = tasks.app_command(sys.executable, port)
    proc = subprocess.Popen(cmd, cwd=tasks.APP_DIR, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ})
    try:
        url = f"http://127.0.0.1:{port}/voila/render/{tasks.MAIN_DASHBOARD}"
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url, timeout=60) as r:
                    page = r.read().decode("utf-8", "replace")
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.5)
        assert "layer_explorer" in page or "layer explorer" in page
        assert "Traceback" not in page
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode in (0, -signal.SIGINT, 130), proc.stdout.read().decode()[-2000:]



def test_the_overview_opens_a_sweep_file(page, voila_server, tmp_path):
    from lowentropy.sweep import sweep

    path = tmp_path / "lenet.csv"
    sweep("lenet-300-100", prune=[0.5, 0.8, 0.95], clusters=[8, 32], workers=1,
          progress=False).to_csv(path)
    errors, bundles = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda r: bundles.append(r.url) if "plotly-widget" in r.url else None)
    open_dashboard(page, voila_server, "network_overview.ipynb")
    page.get_by_placeholder("sweep.csv or sweep.json").fill(str(path))
    page.get_by_role("button", name="open", exact=True).click()
    page.wait_for_function("""() => [...document.querySelectorAll('.js-plotly-plot')].some(
        gd => gd.data.some(t => t.name === 'cser' && t.mode === 'lines+markers'
                                && t.x && t.x.length === 6))""", timeout=60_000)
    assert page.locator(".lowentropy-error").count() == 0
    assert "6 settings" in page.locator(".lowentropy-sweep-summary").inner_text()
    # two figures, plotly's code fetched once (dashboards/plotly_bundle.py), no model lost
    assert len(bundles) == 1 and bundles[0].endswith("/dashboards/static/plotly-widget.js")
    assert errors == []
    page.locator("text=Sweep: every setting at once").scroll_into_view_if_needed()
    screenshot(page, "network_overview_sweep")


def test_uploads_over_the_limit_get_a_message_and_smaller_ones_load(page, voila_server,
                                                                     tmp_path):
    """The upload button checks the size in the page: a file over the server's websocket
    limit (72 MiB) would otherwise close the connection without a word."""
    import numpy as np

    big = tmp_path / "big.npz"
    with open(big, "wb") as f:
        f.truncate(80 * 2**20)  # over the upload limit (8 MiB here) and the websocket's
    small = tmp_path / "small.npz"
    np.savez(small, fc9=np.arange(15, dtype=np.float32).reshape(3, 5))
    open_dashboard(page, voila_server, "layer_explorer.ipynb")
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="upload model").click()
    chooser.value.set_files(str(big))
    message = page.locator(".lowentropy-error")
    message.wait_for(timeout=30_000)
    assert "big.npz" in message.inner_text() and "upload limit" in message.inner_text()
    screenshot(page, "layer_explorer_upload_refused")
    with page.expect_file_chooser() as chooser:  # the kernel is still connected
        page.get_by_role("button", name="upload model").click()
    chooser.value.set_files(str(small))
    page.wait_for_function("""() => [...document.querySelectorAll('select option')].some(
        o => o.textContent.includes('fc9'))""", timeout=30_000)
    assert page.locator(".lowentropy-error").count() == 0


def _accuracy_pair(page) -> tuple[float, float]:
    """(one-shot, retrained) from the accuracy card, e.g. '28.2% → 95.1%'."""
    import re

    text = page.locator(".widget-html", has_text="one-shot → retrained").first.inner_text()
    found = re.search(r"([\d.]+)% → ([\d.]+)%", text)
    assert found, text
    return float(found.group(1)) / 100, float(found.group(2)) / 100


def test_the_explorers_retrain_switch_shows_one_shot_and_retrained(page, voila_server):
    open_dashboard(page, voila_server, "layer_explorer.ipynb")
    page.get_by_text("test accuracy").first.wait_for(timeout=60_000)
    page.get_by_role("checkbox", name="retrain (fine-tune after pruning)").check()
    page.get_by_text("one-shot → retrained").first.wait_for(timeout=180_000)
    one_shot, retrained = _accuracy_pair(page)
    assert retrained > 0.9 > one_shot
    assert page.locator(".lowentropy-error").count() == 0
    screenshot(page, "layer_explorer_retrained")


def test_the_overviews_sensitivity_panel_and_rates_from_sensitivity(page, voila_server):
    open_dashboard(page, voila_server, "network_overview.ipynb")
    page.get_by_role("button", name="analyse sensitivity").click()
    lines = """() => [...document.querySelectorAll('.lowentropy-sensitivity .js-plotly-plot')]
        .some(gd => ['fc1', 'fc2', 'fc3'].every(n => gd.data.some(
            t => t.name === n && t.mode === 'lines+markers' && t.x.length === 10)))"""
    page.wait_for_function(lines, timeout=120_000)
    page.get_by_role("checkbox", name="rates from sensitivity").check()
    page.wait_for_function("""() => [...document.querySelectorAll(
        '.lowentropy-sensitivity .js-plotly-plot')].some(
        gd => gd.data.filter(t => (t.name || '').endsWith(' chosen')).length === 3)""",
                           timeout=120_000)
    summary = page.locator(".lowentropy-sensitivity-summary").inner_text()
    assert "chosen: fc1" in summary
    assert page.locator(".lowentropy-error").count() == 0
    page.locator(".lowentropy-sensitivity").scroll_into_view_if_needed()
    screenshot(page, "network_overview_sensitivity")
