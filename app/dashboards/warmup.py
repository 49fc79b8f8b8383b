"""Compile the dashboards' numba kernels into the on-disk cache before the first page.

Every voila page is a new kernel process. Without the cache its first view compiles the
kernels it uses (tens of seconds on a fresh install); with it they load in about 0.1 s
each. ``python -m dashboards.warmup`` (run in ``app/``; ``python3 tasks.py app`` runs it
before serving, once per change of the sources) builds each dashboard once on its first
view and times one product per format, which compiles and caches what the pages use,
and copies plotly's widget code where voila serves it (:mod:`dashboards.plotly_bundle`).
"""

from __future__ import annotations

import time
from collections.abc import Callable


def _dashboards() -> list[tuple[str, Callable[[], object]]]:
    from .entropy_map import EntropyMap
    from .format_anatomy import FormatAnatomy
    from .layer_explorer import LayerExplorer
    from .network_overview import NetworkOverview

    return [
        ("layer explorer", lambda: LayerExplorer(synchronous=True)),
        ("network overview", lambda: NetworkOverview(synchronous=True)),
        ("format anatomy", FormatAnatomy),
        ("entropy map", lambda: EntropyMap(synchronous=True)),
    ]


def _products() -> None:
    """One product per format at batch 1 and 8, serial and parallel sizes (the live
    timing's kernels)."""
    import lowentropy as le
    from lowentropy.bench import time_formats
    from lowentropy.synthetic import synthetic_layer

    for shape in ((64, 96), (512, 2048)):
        W = synthetic_layer(shape, keep=0.2, levels=16)
        for batch in (1, 8, 64):
            time_formats(W, list(le.FORMATS), batch=batch, rounds=1)


def main() -> int:
    """Warm everything up; print what took how long."""
    from .plotly_bundle import publish

    start = time.perf_counter()
    publish()
    for name, build in [*_dashboards(), ("products", _products)]:
        t = time.perf_counter()
        build()
        print(f"  {name}: {time.perf_counter() - t:.1f} s", flush=True)
    print(f"  warm-up done in {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
