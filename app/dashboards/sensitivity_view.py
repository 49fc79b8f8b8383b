"""The network overview's sensitivity panel: accuracy against sparsity, one line per layer.

Each line is one layer pruned alone (the others untouched) to each sparsity of
``lowentropy.sensitivity.DEFAULT_SPARSITIES``, scored on the validation images held out
of the training split (:func:`dashboards.retraining.sensitivity`). A layer whose line
stays flat can be pruned hard; one that drops early needs a gentle rate. With "rates from
sensitivity", stars mark the rate chosen for each layer (:func:`lowentropy.choose_rates`
for the share of all weights the slider gives).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping

import ipywidgets as w
import plotly.graph_objects as go

import lowentropy as le

from .ui import figure_widget

__all__ = ["SensitivityView", "LAYER_COLORS"]

#: Line colours of the layers (a colour-blind-safe qualitative palette).
LAYER_COLORS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000",
                "#f0e442")
_HINT = ("Press <b>analyse sensitivity</b> (or tick <b>rates from sensitivity</b>) to prune "
         "each layer alone and see how the validation accuracy follows.")
_UNAVAILABLE = "Sensitivity needs a network whose training images come with the package."


class SensitivityView:
    """The panel; ``.widget`` is what to display.

    Parameters
    ----------
    on_request : callable
        The button's callback (a guarded one: ``Messages.guard``), called when the user
        asks for the analysis; the dashboard computes it in its background job and calls
        :meth:`show`.
    """

    def __init__(self, on_request: Callable[[], None]) -> None:
        self.button = w.Button(description="analyse sensitivity", icon="line-chart",
                               layout=w.Layout(width="180px"))
        self.button.on_click(on_request)
        self.summary = w.HTML()
        self.summary.add_class("lowentropy-sensitivity-summary")
        self.table: le.SensitivityTable | None = None
        self.rates: dict[str, float] | None = None
        fig = go.Figure()
        fig.update_layout(height=380, autosize=True, template="plotly_white",
                          margin=dict(l=70, r=30, t=40, b=50), font=dict(size=12),
                          title=dict(text="Validation accuracy with one layer pruned alone",
                                     x=0.02, font=dict(size=14)),
                          legend=dict(orientation="h", y=-0.22, x=0))
        fig.update_xaxes(title_text="sparsity of that layer", tickformat=".0%",
                         range=[-0.02, 1.0])
        fig.update_yaxes(title_text="validation accuracy", tickformat=".0%", range=[0, 1.02])
        fig.add_annotation(name="hint", text=_HINT, showarrow=False, xref="paper",
                           yref="paper", x=0.5, y=0.5, font=dict(size=14, color="#555"),
                           bgcolor="white")
        self.fig = figure_widget(fig)
        self.widget = w.VBox([
            w.HTML("<h3 style='margin:8px 0 2px'>Sensitivity: which layers can take "
                   "pruning</h3>"),
            w.HBox([self.button, self.summary], layout=w.Layout(align_items="center")),
            self.fig,
        ])
        self.widget.add_class("lowentropy-sensitivity")

    def allow(self, allowed: bool) -> None:
        """Offer the analysis only for networks with training data."""
        self.button.disabled = not allowed
        if not allowed:
            self.table = self.rates = None
            self.summary.value = f"<span style='color:#555'>{html.escape(_UNAVAILABLE)}</span>"

    def show(self, table: le.SensitivityTable | None,
             rates: Mapping[str, float] | None = None) -> None:
        """Draw ``table`` (nothing when ``None``) and, when given, the chosen rates."""
        if table is None:
            return
        self.table, self.rates = table, (dict(rates) if rates is not None else None)
        layers = list(dict.fromkeys(table.column("layer")))
        traces = []
        for i, name in enumerate(layers):
            xs, ys = table.curve(name)
            color = LAYER_COLORS[i % len(LAYER_COLORS)]
            traces.append(go.Scatter(
                x=list(map(float, xs)), y=list(map(float, ys)), mode="lines+markers",
                name=name, line=dict(color=color, width=2.5), legendgroup=name,
                hovertemplate=f"{name} %{{x:.0%}} pruned: %{{y:.1%}}<extra></extra>"))
            if rates is not None and name in rates:
                rate = float(rates[name])
                at = float(ys[list(xs).index(rate)]) if rate in list(xs) else None
                traces.append(go.Scatter(
                    x=[rate], y=[at], mode="markers", name=f"{name} chosen",
                    showlegend=False, legendgroup=name,
                    marker=dict(symbol="star", size=16, color=color,
                                line=dict(color="white", width=1)),
                    hovertemplate=f"{name}: {rate:.0%} chosen<extra></extra>"))
        self.fig.data = []
        self.fig.add_traces(traces)
        with self.fig.batch_update():
            for note in self.fig.layout.annotations:
                if note.name == "hint":
                    note.text = ""
        text = f"{len(layers)} layers × {len(table) // max(len(layers), 1)} sparsities"
        if self.rates is not None:
            text += "; chosen: " + ", ".join(f"{n} {r:.0%}" for n, r in self.rates.items())
        self.summary.value = f"<span style='color:#333'>{html.escape(text)}</span>"
