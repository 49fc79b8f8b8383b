"""The lowentropy dashboards: widget apps served by voila from the notebooks in ``app/``.

Each notebook is a thin launcher (``from dashboards.layer_explorer import LayerExplorer``);
the logic lives here, is importable without a browser, and talks to the library only
through its public API (``import lowentropy as le``).
"""

# lowentropy before numpy: at import it sets the defaults that keep thread pools from
# spinning after each call (see lowentropy.threads).
import lowentropy  # noqa: F401
