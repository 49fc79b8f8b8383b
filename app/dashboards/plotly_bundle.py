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

The copy differs from plotly's in two ways, both for the first page's load (CPU profiles
of chromium's main thread on a 2-core machine):

- it registers only the trace types the dashboards draw (:data:`TRACES`; plotly.js's
  scatter is always there), where plotly's bundle runs all 47 of its trace modules (3-D,
  maps, geo, WebGL, ...) on its first import: about 0.2 s less (:func:`slim`);
- it opens with V8's compile hint ``//# allFunctionsCalledOnLoad``: chromium then compiles
  the whole bundle while it downloads, on a background thread, instead of compiling
  plotly.js's one 4.8 MB function on the main thread when the first figure imports it
  (0.5 s there, during the page's busiest second). Browsers without the hint ignore the
  comment.
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import re
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["BUNDLE_NAME", "COMPILE_HINT", "STATIC", "TRACES", "figure_class", "preload_link",
           "publish", "served_path", "shim", "slim"]

#: Where the copy of plotly's bundle is made (served by voila under ``voila/files/``).
STATIC = Path(__file__).resolve().parent / "static"
BUNDLE_NAME = "plotly-widget.js"
#: The plotly.js trace modules the dashboards' figures use besides scatter (plotly.js's
#: core); ``tests/test_app_plotly_bundle.py`` checks every dashboard figure against it.
TRACES = ("bar", "contour", "heatmap")

#: V8's explicit compile hint (chromium 136+): compile every function of the file eagerly.
COMPILE_HINT = "//# allFunctionsCalledOnLoad\n"

# esbuild's bundle of plotly.js: ``"lib/index.js"(e,r){var t=X();t.register([A(),B(),...])``
# where ``A=__commonJS({"lib/bar.js"(e,r){...}})`` and so on.
_REGISTER = re.compile(r'"lib/index\.js"\([\w$]+,[\w$]+\)\{var [\w$]+=[\w$]+\(\);'
                       r'[\w$]+\.register\(\[([\w$(),]*)\]\)')
_MODULE = re.compile(r'(?<![\w$])([\w$]+)=[\w$]+\(\{"lib/([\w-]+)\.js"\(')


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


def slim(code: str, traces: tuple[str, ...] = TRACES) -> str | None:
    """plotly's widget bundle ``code`` with only ``traces`` (and scatter) registered, or
    ``None`` when the bundle's layout is not the one expected (another plotly build).

    The first figure of a page imports the bundle, and plotly.js then runs every trace
    module it registers: 0.25 s of the browser's main thread for all 47 on a 2-core
    machine, during the first page's load. The modules left out are never run.

    Examples
    --------
    >>> code = ('A=c({"lib/bar.js"(e,r){}});B=c({"lib/pie.js"(e,r){}});'
    ...         '"lib/index.js"(e,r){var t=C();t.register([A(),B()]),r.exports=t}')
    >>> slim(code, ("bar",))[-60:]
    '"lib/index.js"(e,r){var t=C();t.register([A()]),r.exports=t}'
    >>> slim(code, ("bar", "heatmap")) is None  # a trace the bundle does not have
    True
    """
    found = _REGISTER.search(code)
    if found is None:
        return None
    modules = dict(_MODULE.findall(code))  # function name -> module name
    calls = found.group(1).split(",")
    if not all(call.endswith("()") and call[:-2] in modules for call in calls):
        return None
    kept = [call for call in calls if modules[call[:-2]] in traces]
    if {modules[call[:-2]] for call in kept} != set(traces):
        return None
    return code[:found.start(1)] + ",".join(kept) + code[found.end(1):]


def publish(static: Path = STATIC, bundle: Path | None = None) -> bool:
    """Make ``static/plotly-widget.js`` the installed plotly's bundle, slimmed by
    :func:`slim` (a plain copy when it cannot be) after :data:`COMPILE_HINT` and a stamp of
    the bundle it was made from; ``False`` if it cannot be written. (voila serves no
    symbolic link out of its folder.)"""
    bundle = plotly_bundle() if bundle is None else bundle
    target = static / BUNDLE_NAME
    try:
        source = bundle.stat()
        stamp = f"{COMPILE_HINT}// {BUNDLE_NAME}: {bundle} {source.st_size} " \
                f"{source.st_mtime_ns} {','.join(TRACES)}\n".encode()
        if target.is_file():
            with open(target, "rb") as made:
                if made.read(len(stamp)) == stamp:
                    return True
        code = bundle.read_text(encoding="utf-8")
        static.mkdir(parents=True, exist_ok=True)
        temporary = static / f".{BUNDLE_NAME}.{os.getpid()}"
        temporary.write_bytes(stamp + (slim(code) or code).encode("utf-8"))
        os.replace(temporary, target)  # atomic: other kernels see the old or the new one
    except (OSError, UnicodeDecodeError):
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
