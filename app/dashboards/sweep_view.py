"""A sweep result in the network overview: every format across every setting, per layer or
for the whole network, so a setting can be picked from the whole trade-off curve.

A sweep (``lowentropy.sweep`` or ``lowentropy sweep MODEL … --out FILE``) has one row per
layer × setting × format. This view opens such a file (typed path inside the allowed
folders, or an upload) and draws, for the chosen layer or the whole network:

- the gain over dense of each format (storage or energy) across the settings;
- the trade-off: the best format's gain against the accuracy of the network at that
  setting when the sweep measured one (the embedded digits networks), else against the
  entropy of the weights.
"""

from __future__ import annotations

import html
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import ipywidgets as w
import plotly.graph_objects as go
from plotly.subplots import make_subplots

import lowentropy as le
from lowentropy.sweep import SweepTable

from .paths import checked_path
from .ui import Messages, Runner, add_trace, figure_widget, format_color
from .upload import LimitedUpload

__all__ = ["SweepView", "setting_label", "summarise", "parse_list"]

WHOLE = "whole network"
_METRICS = {"storage": ("storage_bits", "storage"), "energy": ("energy_pj", "energy")}
_MAX_SWEEP_UPLOAD = 64 * 2**20
_HINT = ("No sweep yet: press <b>sweep this network</b> above, or open a sweep file; "
         "the formats' gains across the settings appear here.")
_PLOT_HEIGHT = 500


def setting_label(row: dict) -> str:
    """``"90% · 5-bit"``, ``"90% · 32 values"`` or ``"50% · unquantized"``."""
    prune = f"{float(row['prune']):.0%}"
    q, levels = row["quantizer"], int(row["levels"])
    detail = {"uniform": f"{levels}-bit", "kmeans": f"{levels} values"}.get(q, "unquantized")
    return f"{prune} · {detail}"


def _key(row: dict) -> tuple:
    return (float(row["prune"]), str(row["quantizer"]), int(row["levels"]))


def summarise(rows: list[dict], layer: str, metric: str) -> dict:
    """Per setting (in sweep order) and format: the metric summed over the chosen layer(s),
    dense's, the weighted entropy and the accuracy.

    Returns ``{"settings": [key…], "labels": [str…], "formats": [name…],
    "value": {format: [float…]}, "dense": [float…], "entropy": [float…],
    "accuracy": [float or None…]}``.
    """
    column = _METRICS[metric][0]
    chosen = [r for r in rows if layer == WHOLE or r["layer"] == layer]
    settings = list(dict.fromkeys(_key(r) for r in chosen))
    formats = list(dict.fromkeys(r["format"] for r in chosen))
    value: dict[str, dict[tuple, float]] = defaultdict(lambda: defaultdict(float))
    entropy_sum: dict[tuple, float] = defaultdict(float)
    weights: dict[tuple, float] = defaultdict(float)
    accuracy: dict[tuple, float | None] = {}
    labels: dict[tuple, str] = {}
    for r in chosen:
        k = _key(r)
        value[r["format"]][k] += float(r[column])
        labels[k] = setting_label(r)
        accuracy[k] = r["accuracy"]
        if r["format"] == formats[0]:
            entropy_sum[k] += float(r["entropy_bits"]) * float(r["weights"])
            weights[k] += float(r["weights"])
    dense = [value["dense"][k] if "dense" in value else float("nan") for k in settings]
    return {
        "settings": settings, "labels": [labels[k] for k in settings], "formats": formats,
        "value": {f: [value[f][k] for k in settings] for f in formats}, "dense": dense,
        "entropy": [entropy_sum[k] / weights[k] if weights[k] else 0.0 for k in settings],
        "accuracy": [accuracy[k] for k in settings],
    }


def parse_list(text: str, kind: type, what: str) -> list:
    """``"0.5, 0.9"`` → ``[0.5, 0.9]`` (commas or spaces); a clear ValueError otherwise.

    Examples
    --------
    >>> parse_list("0.5, 0.9 0.95", float, "pruning fractions")
    [0.5, 0.9, 0.95]
    >>> parse_list("8, x", int, "levels")
    Traceback (most recent call last):
        ...
    ValueError: levels: 'x' is not a whole number; type numbers separated by commas
    """
    parts = [p for p in text.replace(",", " ").split() if p]
    if not parts:
        raise ValueError(f"{what}: type at least one number")
    out = []
    for p in parts:
        try:
            out.append(kind(p))
        except ValueError:
            word = "a whole number" if kind is int else "a number"
            raise ValueError(f"{what}: {p!r} is not {word}; type numbers separated by "
                             "commas") from None
    return out


class SweepView:
    """Open a sweep file, or sweep the current network, and show it; ``.widget`` is what
    to display.

    Parameters
    ----------
    messages : Messages, optional
        Where errors go (a new area by default).
    network : callable, optional
        Returns the network to sweep (the dashboard's current one); without it the view
        only opens files.
    synchronous : bool
        Run sweeps in the caller's thread (tests).
    """

    def __init__(self, messages: Messages | None = None,
                 network: Callable[[], le.Network | None] | None = None, *,
                 synchronous: bool = False) -> None:
        self.messages = messages or Messages()
        self.network = network
        self.rows: list[dict] = []
        self.source = ""
        self.runner = Runner(self.messages, "sweeping", synchronous=synchronous)
        self._build_controls()
        self.fig = figure_widget(self._empty_figure())
        g = self.messages.guard
        self.open_button.on_click(g(self._on_open))
        self.upload.observe(g(self._on_upload), "value")
        self.layer_picker.observe(g(self._on_view), "value")
        self.metric.observe(g(self._on_view), "value")
        self.run_button.on_click(g(self._on_run))
        self.stop_button.on_click(g(self._on_stop))
        run_row = w.HBox([self.run_prune, self.run_method, self.run_levels, self.run_button,
                          self.stop_button, self.runner.bar],
                         layout=w.Layout(flex_flow="row wrap", align_items="center"))
        run_row.layout.display = None if network is not None else "none"
        self.widget = w.VBox([
            w.HTML("<h3 style='margin:8px 0 2px'>Sweep: every setting at once</h3>"
                   "<div style='color:#555'>Sweep this network over several settings here, "
                   "or open the output of <code>lowentropy sweep MODEL --prune … --bits … "
                   "--out FILE</code>, to compare the formats across all the settings and "
                   "pick one from the trade-off curve.</div>"),
            run_row, w.HBox([self.path_text, self.open_button, self.upload],
                            layout=w.Layout(flex_flow="row wrap")),
            w.HBox([self.layer_picker, self.metric], layout=w.Layout(flex_flow="row wrap")),
            self.summary, self.fig,
        ])

    def _build_controls(self) -> None:
        style = {"description_width": "80px"}
        self.path_text = w.Text(placeholder="sweep.csv or sweep.json", description="sweep file",
                                style=style, layout=w.Layout(width="420px"))
        self.open_button = w.Button(description="open", layout=w.Layout(width="70px"))
        self.upload = LimitedUpload(accept=".csv,.json", description="upload sweep",
                                    max_bytes=_MAX_SWEEP_UPLOAD,
                                    layout=w.Layout(width="150px"))
        self.layer_picker = w.Dropdown(options=[WHOLE], description="layer", style=style,
                                       layout=w.Layout(width="420px"))
        self.metric = w.ToggleButtons(options=list(_METRICS), value="storage",
                                      description="gain in", style=style)
        self.metric.style.button_width = "auto"
        self.run_prune = w.Text(value="0.5, 0.8, 0.9, 0.95", description="prunings",
                                style=style, layout=w.Layout(width="260px"))
        self.run_method = w.ToggleButtons(options=[("k-means values", "kmeans"),
                                                   ("uniform bits", "uniform")],
                                          value="kmeans", style={"button_width": "auto"})
        self.run_levels = w.Text(value="8, 32", description="levels",
                                 style={"description_width": "44px"},
                                 layout=w.Layout(width="170px"))
        self.run_button = w.Button(description="sweep this network", button_style="primary",
                                   icon="play", layout=w.Layout(width="170px"))
        self.stop_button = w.Button(description="stop", icon="stop",
                                    layout=w.Layout(width="80px"))
        self.summary = w.HTML()
        self.summary.add_class("lowentropy-sweep-summary")

    # --- sweeping the current network -------------------------------------------------
    def _on_run(self, _=None) -> None:
        network = self.network() if self.network is not None else None
        if network is None:
            raise ValueError("no network to sweep: pick one above first")
        prune = parse_list(self.run_prune.value, float, "pruning fractions")
        levels = parse_list(self.run_levels.value, int, "levels")
        method = self.run_method.value
        key = "clusters" if method == "kmeans" else "bits"

        def job(task):
            table = le.sweep(network, prune=prune, method=method, workers=1,
                             progress=task.progress, **{key: levels})
            return table, f"{network.name} (swept here)"

        self.messages.info(f"sweeping {network.name}: {len(prune)} × {len(levels)} settings "
                           f"per layer …")
        self.runner.start(job, lambda result: self.show(*result))

    def _on_stop(self, _=None) -> None:
        if self.runner.busy:
            self.runner.cancel()
            self.messages.info("sweep stopped")

    # --- loading -----------------------------------------------------------------------
    def _on_open(self, _=None) -> None:
        text = self.path_text.value.strip()
        if not text:
            raise ValueError("type the path of a sweep file (.csv or .json) first")
        self.load(checked_path(text))

    def _on_upload(self, change=None) -> None:
        files = self.upload.value
        if not files:
            return
        item = files[0]
        if int(item["size"]) > _MAX_SWEEP_UPLOAD:
            raise ValueError(f"{item['name']}: a sweep file over 64 MB; open it by path")
        if item.get("content") is None:
            raise ValueError(f"{item['name']} did not arrive; upload it again")
        suffix = Path(item["name"]).suffix.lower()
        if suffix not in (".csv", ".json"):
            raise ValueError(f"{item['name']}: a sweep file is .csv or .json")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"sweep{suffix}"
            path.write_bytes(bytes(item["content"]))
            self.load(path, name=item["name"])

    def load(self, path: str | Path, name: str | None = None) -> None:
        """Read a sweep table (CSV or JSON, as written by ``SweepTable``; every row is
        checked on reading) and show it."""
        self.show(SweepTable.read(path), str(name or path))

    def show(self, table: SweepTable, source: str) -> None:
        """Show a sweep table (read from a file or computed here)."""
        rows = list(table.rows)
        if not rows:
            raise ValueError(f"{source}: the sweep has no rows")
        self.rows, self.source = rows, source
        layers = list(dict.fromkeys(r["layer"] for r in rows))
        with self.layer_picker.hold_trait_notifications():
            self.layer_picker.options = [WHOLE, *layers]
            self.layer_picker.value = WHOLE
        self.messages.clear()
        self.refresh()

    # --- drawing -----------------------------------------------------------------------
    def _empty_figure(self) -> go.Figure:
        """Every trace from the start (one per format, then the trade-off), filled later."""
        fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.14, subplot_titles=(
            "Gain over dense per setting (×)", "Trade-off of the best format"))
        t: dict[str, int] = {}
        self._t = t
        for f in le.FORMATS:
            add_trace(fig, t, f"gain {f}", go.Scatter(
                x=[], y=[], name=f, mode="lines+markers",
                line=dict(color=format_color(f), width=2.5)), row=1, col=1)
        add_trace(fig, t, "trade-off", go.Scatter(
            x=[], y=[], mode="markers+text", name="best format", textposition="top center",
            textfont=dict(size=10), showlegend=False), row=1, col=2)
        fig.update_layout(autosize=True, height=_PLOT_HEIGHT,
                          margin=dict(l=70, r=30, t=50, b=40),
                          legend=dict(orientation="h", x=0, y=1.13), template="plotly_white",
                          font=dict(size=13))
        fig.add_annotation(name="hint", text=_HINT, showarrow=False, xref="paper",
                           yref="paper", x=0.5, y=0.5, font=dict(size=15, color="#555"),
                           bgcolor="white")
        fig.update_yaxes(rangemode="tozero", row=1, col=1)
        fig.update_xaxes(type="log", row=1, col=2)
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
        fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
        return fig

    def _show_axes(self) -> None:
        """From the hint to the plots (inside a batch update)."""
        for note in self.fig.layout.annotations:
            if note.name == "hint":
                note.text = ""
        self.fig.update_xaxes(showticklabels=True, showgrid=True)
        self.fig.update_yaxes(showticklabels=True, showgrid=True)

    def _on_view(self, change=None) -> None:
        if self.rows:
            self.refresh()

    def refresh(self) -> None:
        """Redraw for the chosen layer and metric."""
        layer, metric = self.layer_picker.value, self.metric.value
        s = summarise(self.rows, layer, metric)
        gains = {f: [d / v if v else float("nan") for d, v in zip(s["dense"], vals,
                                                                   strict=True)]
                 for f, vals in s["value"].items()}
        best = [max((gains[f][i], f) for f in s["formats"]) for i in range(len(s["labels"]))]
        has_acc = any(a is not None for a in s["accuracy"])
        what = _METRICS[metric][1]
        with self.fig.batch_update():
            self._show_axes()
            for f in le.FORMATS:
                trace = self.fig.data[self._t[f"gain {f}"]]
                trace.x, trace.y = (s["labels"], gains[f]) if f in gains else ([], [])
                trace.hovertemplate = (f"{f}: %{{y:.2f}}× less {what} than dense at %{{x}}"
                                       "<extra></extra>")
            trade = self.fig.data[self._t["trade-off"]]
            trade.x = [g for g, _ in best]
            trade.y = s["accuracy"] if has_acc else s["entropy"]
            trade.text = s["labels"]
            trade.customdata = [f for _, f in best]
            trade.marker = dict(size=11, color=[format_color(f) for _, f in best],
                                line=dict(color="white", width=1))
            trade.hovertemplate = ("%{text}: %{customdata} %{x:.2f}× smaller "
                                   + ("accuracy %{y:.1%}" if has_acc else "H %{y:.2f} bits")
                                   + "<extra></extra>")
            self.fig.update_yaxes(title_text=f"{what} gain over dense (×)", row=1, col=1)
            self.fig.update_xaxes(title_text="setting (pruned · quantizer)", tickangle=-35,
                                  row=1, col=1)
            self.fig.update_xaxes(title_text=f"best format's {what} gain (×)", row=1, col=2)
            self.fig.update_yaxes(title_text="test accuracy" if has_acc
                                  else "entropy H (bits per weight)",
                                  tickformat=".0%" if has_acc else "",
                                  range=[0, 1.08] if has_acc else None, row=1, col=2)
        top = max(range(len(best)), key=lambda i: best[i][0])
        self.summary.value = (
            f"<div style='margin:4px 0'><b>{html.escape(self.source)}</b>: "
            f"{len({r['layer'] for r in self.rows})} layers × {len(s['labels'])} settings × "
            f"{len(s['formats'])} formats. Largest {what} gain for "
            f"<b>{html.escape(layer)}</b>: <b>{best[top][1]}</b> at "
            f"<b>{html.escape(s['labels'][top])}</b> ({best[top][0]:.1f}× over dense)"
            + (f", accuracy {s['accuracy'][top]:.1%}" if s["accuracy"][top] is not None
               else "") + ".</div>")
