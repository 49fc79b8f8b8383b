"""Key press → redrawn storage figure in the layer explorer, measured in chromium.

Starts voila on ``app/`` (as ``python3 tasks.py app`` does), opens the layer explorer in
Debian's chromium (``/usr/bin/chromium``), picks a network and layer (AlexNet fc6,
4096 × 9216, by default) and measures:

- the first plot: from opening the page to the storage bars of the chosen layer, the page
  opened ``--settle`` seconds (20) after the server started, once voila's preheated
  kernel has run the notebook (``--settle 0`` includes part of the preheating);
- pruning moves with k-means 32: ``ArrowRight`` on the pruning slider → storage redrawn;
- bits moves with the uniform quantizer at 0 % pruning (from 2 bits up, at most 6).

Between moves the page rests ``--pause`` seconds (0.3 by default: shorter than the 0.6 s
after which the live timing starts, so no timing runs; 1.5 measures moves made while the
live timing of the previous setting is under way).

Each time runs from the key press to the moment the storage bars in the page differ from
before. Medians are printed (and written as JSON with ``--out``). The machine is shared and
noisy: quote medians and compare runs made side by side.

    python benchmarks/browser_refresh.py [--network alexnet] [--layer classifier.1.weight]
                                         [--moves 5] [--out results.json] [--settle 20]
                                         [--pause 0.3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser import CHROMIUM_ARGS, VoilaServer, block_outside_requests  # noqa: E402

STORAGE = """() => {
    const gd = [...document.querySelectorAll('.js-plotly-plot')][0];
    if (!gd || !gd.data) return null;
    const arrays = new Set(gd.data.filter(t => t.legendgroup === 'arrays').map(t => t.name));
    let total = 0, n = 0;
    for (const t of gd.data) if (arrays.has(t.name) && t.y) for (const v of t.y) {
        total += v; n += 1; }
    return n ? total : null;
}"""


def _wait_change(page, before, timeout_ms: int = 120_000) -> None:
    page.wait_for_function(f"(b) => {{ const v = ({STORAGE})(); return v !== null && v !== b; }}",
                           arg=before, timeout=timeout_ms, polling="raf")


def _moves(page, handle, moves: int, pause: float = 0.3) -> list[float]:
    """Seconds from each ArrowRight on ``handle`` to the redrawn storage figure."""
    times = []
    for _ in range(moves):
        before = page.evaluate(STORAGE)
        handle.focus()
        start = time.perf_counter()
        page.keyboard.press("ArrowRight")
        _wait_change(page, before)
        times.append(time.perf_counter() - start)
        page.wait_for_timeout(pause * 1000)  # the live timing starts after 0.6 s of rest
    return times


def run(network: str, layer: str, moves: int, settle: float = 20.0,
        pause: float = 0.3) -> dict:
    from playwright.sync_api import sync_playwright

    server = VoilaServer(Path(tempfile.mkdtemp()) / "voila.log")
    server.wait_ready()
    time.sleep(settle)  # voila's preheated kernel runs the notebook once started
    out: dict = {"network": network, "layer": layer, "settle_s": settle, "pause_s": pause}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            block_outside_requests(page, server.url)
            start = time.perf_counter()
            page.goto(f"{server.url}/voila/render/layer_explorer.ipynb",
                      wait_until="domcontentloaded", timeout=300_000)
            page.wait_for_function(f"() => ({STORAGE})() !== null", timeout=300_000)
            out["first_plot_s"] = time.perf_counter() - start
            selects = page.locator("select")
            current = selects.nth(0).evaluate("s => s.options[s.selectedIndex].text")
            if current != network:
                before = page.evaluate(STORAGE)
                selects.nth(0).select_option(label=network)
                _wait_change(page, before, 600_000)
            labels = selects.nth(1).locator("option").all_inner_texts()
            label = next(t for t in labels if t.split()[0] == layer)  # "fc1  300×64"
            current = selects.nth(1).evaluate("s => s.options[s.selectedIndex].text")
            if current != label:
                before = page.evaluate(STORAGE)
                start = time.perf_counter()
                selects.nth(1).select_option(label=label)
                _wait_change(page, before, 600_000)
                out["layer_switch_s"] = time.perf_counter() - start
            page.wait_for_timeout(2000)
            sliders = page.locator(".widget-slider .noUi-handle")
            out["prune_kmeans32_s"] = _moves(page, sliders.nth(0), moves, pause)
            before = page.evaluate(STORAGE)
            page.get_by_role("button", name="uniform", exact=True).click()
            _wait_change(page, before, 300_000)
            sliders.nth(0).focus()
            page.keyboard.press("Home")  # 0 % pruning
            page.wait_for_timeout(3000)
            before = page.evaluate(STORAGE)
            sliders.nth(1).focus()
            page.keyboard.press("Home")  # 2 bits: up to 6 moves to 8 bits
            _wait_change(page, before, 300_000)
            page.wait_for_timeout(2000)
            out["bits_uniform_s"] = _moves(page, sliders.nth(1), min(moves, 6), pause)
            browser.close()
    finally:
        server.stop()
    for key in ("prune_kmeans32_s", "bits_uniform_s"):
        out[key.replace("_s", "_median_s")] = statistics.median(out[key])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="alexnet")
    parser.add_argument("--layer", default="classifier.1.weight")
    parser.add_argument("--moves", type=int, default=5)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--settle", type=float, default=20.0,
                        help="seconds between the server's start and opening the page, for "
                             "the preheated kernel to be ready, as for a user who opens the "
                             "page after `python3 tasks.py app` printed its address (0: "
                             "open at once, measuring part of the preheating too)")
    parser.add_argument("--pause", type=float, default=0.3,
                        help="seconds of rest between moves (1.5: the live timing of the "
                             "previous setting runs when the next move comes)")
    args = parser.parse_args(argv)
    result = run(args.network, args.layer, args.moves, args.settle, args.pause)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
