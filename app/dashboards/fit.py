"""Figures that follow their container's width, in voila and in JupyterLab.

A plotly ``FigureWidget`` without a fixed width sizes itself when it is drawn, and again on
a window ``resize`` event. In voila it is drawn before the dashboard's columns have their
final width, and in JupyterLab the output area also changes width without the window
changing (a side panel opened or closed). :class:`FitFigures` is an invisible widget
placed in a dashboard: it watches the dashboard's width in the page (``ResizeObserver``)
and sends the window a ``resize`` event when it changes, so that every figure redraws at
its container's width.
"""

from __future__ import annotations

import anywidget

__all__ = ["FitFigures", "DASHBOARD_CLASS"]

#: The CSS class of every dashboard's outermost widget (what :class:`FitFigures` watches).
DASHBOARD_CLASS = "lowentropy-dashboard"

_ESM = r"""
function render({ el }) {
  el.style.display = "none";
  let observer = null, timer = null, last = -1;
  const nudge = () => {
    clearTimeout(timer);
    timer = setTimeout(() => window.dispatchEvent(new Event("resize")), 60);
  };
  const watch = () => {
    if (!el.isConnected) { setTimeout(watch, 100); return; }
    const root = el.closest(".DASHBOARD_CLASS") || el.parentElement;
    observer = new ResizeObserver((entries) => {
      const width = Math.round(entries[0].contentRect.width);
      if (width !== last) { last = width; nudge(); }
    });
    observer.observe(root);
    setTimeout(nudge, 500);  // once more after the first drawing settled
  };
  watch();
  return () => { if (observer) observer.disconnect(); clearTimeout(timer); };
}
export default { render };
""".replace("DASHBOARD_CLASS", DASHBOARD_CLASS)


class FitFigures(anywidget.AnyWidget):
    """An invisible widget: the figures of the dashboard holding it follow its width.

    Put it anywhere inside a widget that has the CSS class :data:`DASHBOARD_CLASS`.
    """

    _esm = _ESM
