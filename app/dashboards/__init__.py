"""The lowentropy dashboards: widget apps served by voila from the notebooks in ``app/``.

Each notebook is a thin launcher (``from dashboards.layer_explorer import LayerExplorer``);
the logic lives here, is importable without a browser, and talks to the library only
through its public API (``import lowentropy as le``).
"""

import os

# Thread pools that keep spinning after a call take the cores the next computation needs
# (2-core machines: measured timings off by up to 80x); set before numpy and numba load.
# See benchmarks/run.py for the measurements.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "18")
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
