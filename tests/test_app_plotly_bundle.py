"""The dashboards' figures load plotly's widget code from one URL under voila."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin

import plotly.graph_objects as go
import pytest
from dashboards import plotly_bundle
from dashboards.plotly_bundle import (
    BUNDLE_NAME,
    COMPILE_HINT,
    TRACES,
    preload_link,
    publish,
    served_path,
    shim,
    slim,
)


def test_served_path_follows_the_notebook_folder_and_the_base_url(tmp_path):
    static = tmp_path / "dashboards" / "static"
    url = "http://127.0.0.1:8866/voila/render/layer_explorer.ipynb"
    assert served_path(url, tmp_path, static) == \
        "/voila/files/dashboards/static/plotly-widget.js"
    url = "https://hub.example/user/ana/voila/render/app/overview.ipynb?tab=1"
    assert served_path(url, tmp_path, static) == \
        "/user/ana/voila/files/app/dashboards/static/plotly-widget.js"


def test_no_served_path_outside_voila_or_outside_the_notebook_folder(tmp_path):
    static = tmp_path / "dashboards" / "static"
    assert served_path(None, tmp_path, static) is None
    assert served_path("", tmp_path, static) is None
    assert served_path("http://127.0.0.1:8866/", tmp_path, static) is None  # one notebook
    assert served_path("http://h/voila/render/a.ipynb", tmp_path / "sub", static) is None


def test_publish_writes_the_bundle_once_and_follows_a_new_version(tmp_path):
    bundle = tmp_path / "widgetbundle.js"
    bundle.write_text("export default {};\n")  # not plotly's layout: copied as it is
    static = tmp_path / "static"
    assert publish(static, bundle)
    target = static / BUNDLE_NAME
    made = target.read_text()
    assert made.startswith(COMPILE_HINT) and made.endswith(bundle.read_text())
    assert not target.is_symlink()
    mtime = target.stat().st_mtime_ns
    assert publish(static, bundle) and target.stat().st_mtime_ns == mtime  # unchanged
    bundle.write_text("export default {render() {}};\n")
    assert publish(static, bundle) and target.read_text().endswith(bundle.read_text())
    assert [p.name for p in static.iterdir()] == [BUNDLE_NAME]  # no temporary left


def _registered(code: str) -> list[str]:
    """The module names in the bundle's ``register([...])`` list."""
    calls = re.search(r'"lib/index\.js"\(\w+,\w+\)\{var \w+=\w+\(\);\w+\.register\(\['
                      r'([^\]]*)\]', code).group(1).split(",")
    return [re.search(rf'(?<![\w$]){re.escape(call[:-2])}=[\w$]+\(\{{"lib/([\w-]+)\.js"',
                      code).group(1) for call in calls]


def test_slim_registers_only_the_dashboards_traces_and_changes_nothing_else():
    code = plotly_bundle.plotly_bundle().read_text(encoding="utf-8")
    slimmed = slim(code)
    assert slimmed is not None, "plotly's bundle layout changed: update dashboards.plotly_bundle"
    everything = _registered(code)
    assert len(everything) > 40 and set(TRACES) < set(everything)
    assert sorted(_registered(slimmed)) == sorted(TRACES)
    start = code.index('"lib/index.js"(')
    assert slimmed[:start] == code[:start]  # every module's code stays; only the list is cut
    tail = code[code.index("]", start):]
    assert slimmed.endswith(tail)


def test_slim_leaves_a_bundle_of_another_layout_alone():
    assert slim("export default {};") is None
    code = plotly_bundle.plotly_bundle().read_text(encoding="utf-8")
    assert slim(code, (*TRACES, "no-such-trace")) is None


def test_every_trace_the_dashboards_draw_is_registered():
    """The dashboards build their traces as ``go.<Trace>(...)``; scatter is plotly.js's
    core, every other type must be one :func:`slim` keeps."""
    used = set()
    for source in (Path(plotly_bundle.__file__).parent).glob("*.py"):
        text = source.read_text()
        assert "plotly.express" not in text and "add_trace(dict" not in text
        for name in re.findall(r"\bgo\.([A-Z]\w*)\(", text):
            kind = getattr(go, name)
            if issubclass(kind, go.Figure) or kind is go.Layout:
                continue
            used.add(kind().type)
    assert {"scatter", "bar", "heatmap"} <= used
    assert used <= {"scatter", *TRACES}


def test_publish_reports_a_folder_it_cannot_write(tmp_path):
    bundle = tmp_path / "widgetbundle.js"
    bundle.write_text("export default {};\n")
    blocker = tmp_path / "static"
    blocker.write_text("a file where the folder should be")
    assert not publish(blocker, bundle)
    assert not publish(tmp_path / "static2", tmp_path / "missing.js")


def test_the_shim_imports_the_bundle_from_the_page_origin():
    code = shim("/voila/files/dashboards/static/plotly-widget.js")
    assert 'const url = new URL("/voila/files/dashboards/static/plotly-widget.js", ' \
        'location.href).href;' in code
    # a failed early request (modulepreload) is kept by the browser: retried under a new URL
    assert 'await import(url).catch(() => import(url + "?retry"))' in code
    # no report of plotly.js's defaults after every update (the kernel never reads them)
    assert "view._sendTraceDeltas = view._sendLayoutDelta = function () {};" in code
    assert "export default bundle.default" in code


def test_the_installed_bundle_has_what_the_shim_relies_on():
    code = plotly_bundle.plotly_bundle().read_text(encoding="utf-8")
    exported = re.findall(r"export\{([^}]*)\}", code)[-1]
    view = re.search(r"(\w+) as FigureView", exported).group(1)
    assert "as default" in exported
    body = code[code.index(f"{view}=class"):]
    assert "_sendTraceDeltas(" in body and "_sendLayoutDelta(" in body


@pytest.mark.parametrize("base", ["/", "/user/ana/"])
@pytest.mark.parametrize("folder", ["", "sub/dir"])
def test_the_preload_link_names_the_url_the_shim_imports(tmp_path, base, folder):
    href = re.fullmatch(r'<link rel="modulepreload" href="([^"]+)">',
                        preload_link(folder)).group(1)
    page = f"http://h:1{base}voila/render/{folder + '/' if folder else ''}x.ipynb"
    cwd = tmp_path / folder
    imported = served_path(page, cwd, cwd / "dashboards" / "static")
    assert urljoin(page, href) == urljoin(page, imported)
    if base == "/" and not folder:  # a preheated kernel knows only the base URL
        assert imported == served_path(None, cwd, cwd / "dashboards" / "static",
                                       base_url=base)


def test_the_layer_explorer_page_preloads_the_bundle_first():
    import nbformat

    nb = nbformat.read(Path(__file__).parent.parent / "app" / "layer_explorer.ipynb", 4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.strip() == preload_link()


def test_figure_class_is_plotlys_outside_voila_and_a_shim_under_it(monkeypatch, tmp_path):
    monkeypatch.delenv("VOILA_REQUEST_URL", raising=False)
    plotly_bundle.figure_class.cache_clear()
    try:
        assert plotly_bundle.figure_class() is go.FigureWidget
        plotly_bundle.figure_class.cache_clear()
        static = tmp_path / "dashboards" / "static"
        monkeypatch.setattr(plotly_bundle, "STATIC", static)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("VOILA_REQUEST_URL", "http://h/voila/render/a.ipynb")
        cls = plotly_bundle.figure_class()
        assert issubclass(cls, go.FigureWidget) and cls is not go.FigureWidget
        widget = cls(go.Figure(go.Bar(y=[1, 2])))
        assert widget._esm == shim("/voila/files/dashboards/static/plotly-widget.js")
        assert (static / BUNDLE_NAME).stat().st_size > 1_000_000  # plotly.js itself
    finally:
        plotly_bundle.figure_class.cache_clear()


def test_a_page_kernel_skips_jsonschemas_slow_optional_imports():
    """Importing the dashboards and plotly's FigureWidget (what a page's kernel does) does
    not import rfc3987_syntax or isoduration (seconds of import for checks no page uses)."""
    import subprocess
    import sys
    from pathlib import Path

    app = Path(__file__).resolve().parents[1] / "app"
    code = ("import sys, dashboards.layer_explorer, plotly.graph_objects as go; "
            "go.FigureWidget; import jsonschema; "
            "print([sys.modules.get(m) for m in ('rfc3987_syntax', 'isoduration')])")
    out = subprocess.run([sys.executable, "-c", code], cwd=app, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[None, None]", out.stderr
