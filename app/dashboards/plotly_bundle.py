"""One copy of plotly's widget code per page, loaded from a URL that voila serves.

Every plotly ``FigureWidget`` carries its browser code, plotly.js bundled (about 5 MB), in
its own state, and the browser imports it again for every figure: 1.3-1.7 s each in
chromium on a quiet 2-core machine. anywidget gives a model 2 s to load its code; past
that the figure is drawn once and never updated, so a page with two figures (the network
overview and its sweep panel) lost its second one.

Under voila the figures of :func:`figure_class` carry a three-line module instead, which
imports the bundle from one URL: ``voila/files/<notebook folder>/dashboards/static/
plotly-widget.js``, a copy of the installed plotly's bundle made on first use and
allow-listed in ``app/voila.json``. The browser loads it once per page (its module map
keeps it) and caches it between pages. Elsewhere (JupyterLab, a script), or when the link
cannot be made, figures keep plotly's own inline code.
"""

from __future__ import annotations

import filecmp
import functools
import json
import os
import posixpath
import shutil
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["BUNDLE_NAME", "STATIC", "figure_class", "preload_link", "publish",
           "served_path", "shim"]

#: Where the copy of plotly's bundle is made (served by voila under ``voila/files/``).
STATIC = Path(__file__).resolve().parent / "static"
BUNDLE_NAME = "plotly-widget.js"


def plotly_bundle() -> Path:
    """The installed plotly's widget code (``plotly/package_data/widgetbundle.js``)."""
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "widgetbundle.js"


def served_path(request_url: str | None, cwd: str | Path, static: Path = STATIC, *,
                base_url: str | None = None) -> str | None:
    """The URL path under which voila serves ``static/plotly-widget.js``, or ``None``.

    Parameters
    ----------
    request_url : str or None
        The page's address as voila saw it (``VOILA_REQUEST_URL`` in the kernel's
        environment), e.g. ``http://host:8866/voila/render/layer_explorer.ipynb``.
    cwd : path
        The kernel's working folder: the notebook's folder, which voila serves as
        ``voila/files/<notebook folder>/``.
    static : Path
        The folder holding the bundle; it must lie inside ``cwd``.
    base_url : str, optional
        Without a request (a preheated kernel starts before any page asks for it): the
        server's base URL (``VOILA_BASE_URL``); the notebooks are then taken to sit in
        the folder voila serves, as the app's do.

    Examples
    --------
    >>> served_path("http://h:1/base/voila/render/sub/a.ipynb?x=1", "/app/sub",
    ...             Path("/app/sub/dashboards/static"))
    '/base/voila/files/sub/dashboards/static/plotly-widget.js'
    >>> served_path(None, "/app", Path("/app/dashboards/static"), base_url="/")
    '/voila/files/dashboards/static/plotly-widget.js'
    >>> served_path("http://h:1/", "/app", Path("/app/dashboards/static")) is None
    True
    """
    inside = os.path.relpath(static / BUNDLE_NAME, cwd).replace(os.sep, "/")
    if inside.startswith("../"):
        return None
    if not request_url:
        if base_url is None:
            return None
        return posixpath.join("/" + base_url.strip("/"), "voila/files", inside)
    prefix, found, notebook = urlsplit(request_url).path.partition("/voila/render/")
    if not found:
        return None  # voila serving a single notebook: no file route
    return posixpath.join(f"{prefix}/voila/files", posixpath.dirname(notebook), inside)


def publish(static: Path = STATIC, bundle: Path | None = None) -> bool:
    """Make ``static/plotly-widget.js`` a copy of the installed plotly's bundle (voila
    serves no symbolic link out of its folder); ``False`` if it cannot be written."""
    bundle = plotly_bundle() if bundle is None else bundle
    target = static / BUNDLE_NAME
    try:
        if target.is_file() and filecmp.cmp(target, bundle, shallow=False):
            return True
        static.mkdir(parents=True, exist_ok=True)
        temporary = static / f".{BUNDLE_NAME}.{os.getpid()}"
        shutil.copyfile(bundle, temporary)
        os.replace(temporary, target)  # atomic: other kernels see the old or the new one
    except OSError:
        return False
    return True


def shim(path: str) -> str:
    """The widget code of a figure: import the bundle from ``path`` (one module per page)
    and hand on its widget.

    A page may have asked for the bundle early (the layer explorer's ``<link
    rel="modulepreload">``, see :func:`preload_link`); should that request have failed
    (the copy not yet made), the browser keeps the failure for that URL, so the import is
    tried once more under another one.

    After every update plotly's widget diffs the whole drawn figure against its model and
    sends the kernel the defaults plotly.js filled in (layout and every trace: about 33 kB
    per slider move on the layer explorer), which the kernel echoes back. The dashboards
    never read those defaults, so the shim turns the two reports off: each move costs the
    browser 10-20 ms less script and the kernel one large message less each way."""
    url = f"new URL({json.dumps(path)}, location.href).href"
    return (f"const url = {url};\n"
            "const bundle = await import(url).catch(() => import(url + \"?retry\"));\n"
            "const view = bundle.FigureView.prototype;\n"
            "view._sendTraceDeltas = view._sendLayoutDelta = function () {};\n"
            "export default bundle.default;\n")


def preload_link(notebook_dir: str = "") -> str:
    """``<link rel="modulepreload">`` of the bundle, for a markdown cell at the top of a
    notebook in ``app/<notebook_dir>``: the browser then fetches and compiles plotly.js
    while it loads voila's own code, instead of after the widgets arrived (the first plot
    of the layer explorer came 0.3-0.5 s sooner in chromium on a busy 2-core machine).
    The address is relative to the page (``voila/render/<notebook_dir>/<name>.ipynb``),
    so it is the one :func:`shim` imports under any base URL."""
    depth = len([part for part in notebook_dir.split("/") if part])
    relative = "../" * (depth + 1) + posixpath.join("files", notebook_dir,
                                                      "dashboards/static", BUNDLE_NAME)
    return f'<link rel="modulepreload" href="{relative}">'


@functools.cache
def figure_class() -> type:
    """``plotly.graph_objects.FigureWidget``, or under voila a subclass whose widget code
    is :func:`shim` (decided once per kernel)."""
    import plotly.graph_objects as go

    path = served_path(os.environ.get("VOILA_REQUEST_URL"), Path.cwd(), STATIC,
                       base_url=os.environ.get("VOILA_BASE_URL"))
    if path is None or not publish(STATIC):
        return go.FigureWidget
    return type("FigureWidget", (go.FigureWidget,), {"_esm": shim(path),
                                                      "__module__": __name__})
