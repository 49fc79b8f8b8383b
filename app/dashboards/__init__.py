"""The lowentropy dashboards: widget apps served by voila from the notebooks in ``app/``.

Each notebook is a thin launcher (``from dashboards.layer_explorer import LayerExplorer``);
the logic lives here, is importable without a browser, and talks to the library only
through its public API (``import lowentropy as le``).
"""

import sys

# Lighter imports for every page's kernel. plotly's FigureWidget imports nbformat, which
# imports jsonschema, whose format checkers import two optional packages when they are
# installed (jupyter's own dependencies install them): rfc3987_syntax builds a grammar at
# import (1.6 s on an idle core, 4 s on a busy one) and isoduration imports arrow's locales
# (0.3 s). No dashboard checks IRIs or ISO durations in a JSON schema, so the kernel marks
# them absent (jsonschema then leaves out those two checks), unless already imported.
for _optional in ("rfc3987_syntax", "isoduration"):
    sys.modules.setdefault(_optional, None)

# lowentropy before numpy: at import it sets the defaults that keep thread pools from
# spinning after each call (see lowentropy.threads).
import lowentropy  # noqa: E402, F401
