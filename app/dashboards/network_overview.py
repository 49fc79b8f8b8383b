"""Network overview: every layer of a network in one view, under one global pruning and
quantization setting — the paper's tables, live.

Per layer and in total, for every registered format: storage, operations and energy of
one inference (``lowentropy.report.network_report``), the entropy of each layer and, for
the networks trained by the project, the test accuracy after compression, one-shot and,
with "retrain", after Deep Compression's retraining. Big networks (and retraining) are
computed in a background thread with a progress bar, cancelled by the next change. Below,
the sensitivity of each layer to pruning (which also chooses per-layer rates), then a
sweep file (``lowentropy sweep``) shows every format across all its settings.
"""

from __future__ import annotations

import dataclasses
import html

import ipywidgets as w
import plotly.graph_objects as go
from plotly.subplots import make_subplots

import lowentropy as le
from lowentropy.report import NetworkReport, network_report, network_stats

from . import retraining
from .compression import Accounting
from .controls import AccountingControls, CompressionControls
from .sensitivity_view import SensitivityView
from .sweep_view import SweepView
from .ui import (
    Messages,
    Runner,
    Task,
    accuracy_card,
    add_trace,
    card,
    dashboard_page,
    figure_widget,
    fmt_bytes,
    format_color,
    main_layout,
)

__all__ = ["NetworkOverview"]

_PANELS = (
    "Storage per layer (bytes, log scale)",
    "Whole network: gain over dense (×)",
    "Entropy H and p₀ per layer",
    "Energy per inference (µJ, log scale)",
)
_GAINS = ("storage", "operations", "energy")


class NetworkOverview:
    """The network overview dashboard; ``.widget`` is what to display.

    Parameters
    ----------
    network : str or lowentropy.Network, optional
        A name from ``le.list_networks()`` (the first by default) or a loaded network.
    synchronous : bool
        Compute in the caller's thread (tests).
    """

    def __init__(self, network: str | le.Network | None = None, *,
                 synchronous: bool = False) -> None:
        self.messages = Messages()
        self.worker = Runner(self.messages, "layers", synchronous=synchronous)
        self.network: le.Network | None = None
        self.report: NetworkReport | None = None
        self.accuracy: retraining.Accuracy | None = None
        self.formats = list(le.FORMATS)
        self._sensitivity_wanted = False  # the user asked for the sensitivity panel
        self._stats_cache: tuple | None = None  # (network, recipe, per-layer statistics)

        style = {"description_width": "80px"}

        def lay() -> w.Layout:  # one per widget: a shared layout hides them together
            return w.Layout(width="290px")

        self.network_picker = w.Dropdown(options=le.list_networks(), description="network",
                                         style=style, layout=lay())
        self.compression_controls = CompressionControls(width="290px", label_width="80px",
                                                        global_prune=True, sensitivity=True,
                                                        retrain=True)
        self.accounting_controls = AccountingControls(width="290px", label_width="80px",
                                                      batch=False)
        c, acc = self.compression_controls, self.accounting_controls
        self.prune_slider, self.global_box = c.prune_slider, c.global_box
        self.quantizer, self.bits_slider = c.quantizer, c.bits_slider
        self.clusters_slider = c.clusters_slider
        self.policy_picker, self.value_bits_picker = acc.policy_picker, acc.value_bits_picker
        self.table_picker = acc.table_picker
        self.cards = w.HTML()
        self.totals_table = w.HTML()
        # The first view is drawn into a plain figure, which becomes the FigureWidget only
        # then: voila loses changes made to a FigureWidget before the page connects.
        self.fig = self._build_figure()
        self._first = True

        controls = w.VBox([
            self.network_picker, c.widget, acc.widget, self.worker.bar,
        ], layout=w.Layout(width="310px", min_width="310px"))
        title = w.HTML(
            "<h2 style='margin:4px 0'>lowentropy · network overview</h2>"
            "<div style='color:#555'>One pruning and quantization setting for every layer; "
            "what each format stores and computes for one inference, per layer and in total "
            "(as in the paper's tables).</div>")
        g = self.messages.guard
        self.sensitivity = SensitivityView(g(self._on_sensitivity))
        self.network_picker.observe(g(self._on_network), "value")
        c.on_change(g(self._on_setting))
        acc.on_change(g(self._on_setting))
        if isinstance(network, le.Network):
            g(self.set_network)(network)
        else:
            name = network or self.network_picker.value
            g(self.set_network)(le.load_network(name))
        self._first = False
        self.fig = figure_widget(self.fig)
        main = w.VBox([self.cards, self.messages.widget, self.totals_table, self.fig],
                      layout=main_layout())
        self.sweep = SweepView(self.messages, network=lambda: self.network,
                               synchronous=synchronous)
        self.widget = dashboard_page("network-overview", title, controls, main,
                                     self.sensitivity.widget, self.sweep.widget)

    def _build_figure(self) -> go.Figure:
        fig = make_subplots(rows=2, cols=2, subplot_titles=_PANELS, vertical_spacing=0.16,
                            horizontal_spacing=0.16, specs=[[{}, {}], [{"secondary_y": True},
                                                                       {}]])
        t: dict[str, int] = {}
        self._t = t
        for name in self.formats:
            add_trace(fig, t, f"storage {name}", go.Bar(
                name=name, x=[], y=[], marker_color=format_color(name), legendgroup=name,
                hovertemplate=f"{name} %{{x}}: %{{y:.3s}}B<extra></extra>"), row=1, col=1)
        for name in self.formats:
            add_trace(fig, t, f"gain {name}", go.Bar(
                name=name, x=list(_GAINS), y=[0, 0, 0], showlegend=False,
                marker_color=format_color(name), legendgroup=name,
                hovertemplate=f"{name}: ×%{{y:.2f}} %{{x}}<extra></extra>"), row=1, col=2)
        add_trace(fig, t, "entropy", go.Scatter(
            name="H (bits/weight)", x=[], y=[], mode="lines+markers",
            line=dict(color="#d55e00")), row=2, col=1)
        add_trace(fig, t, "p0", go.Scatter(
            name="p₀", x=[], y=[], mode="lines+markers", line=dict(color="#0072b2", dash="dot")),
            row=2, col=1, secondary_y=True)
        for name in self.formats:
            add_trace(fig, t, f"energy {name}", go.Bar(
                name=name, x=[], y=[], showlegend=False, marker_color=format_color(name),
                legendgroup=name, hovertemplate=f"{name} %{{x}}: %{{y:.3s}} µJ<extra></extra>"),
                row=2, col=2)
        fig.update_layout(height=820, autosize=True, barmode="group", template="plotly_white",
                          margin=dict(l=60, r=30, t=50, b=40), font=dict(size=12),
                          legend=dict(orientation="h", y=1.1, x=0), uirevision="keep")
        fig.update_yaxes(type="log", tickformat="~s", ticksuffix="B", row=1, col=1)
        fig.update_yaxes(title_text="× vs dense", row=1, col=2)
        fig.update_yaxes(title_text="H bits", rangemode="tozero", row=2, col=1)
        # p₀'s own ticks (0-100 %), not ticks synchronised with H's grid lines (0.114, ...)
        fig.update_yaxes(title_text="p₀", range=[0, 1.02], tickmode="linear", tick0=0,
                         dtick=0.2, tickformat=".0%", showgrid=False, row=2, col=1,
                         secondary_y=True)
        fig.update_yaxes(type="log", tickformat="~s", row=2, col=2)
        for col in (1, 2):
            fig.update_xaxes(tickangle=-40, row=2, col=col)
        fig.update_xaxes(tickangle=-40, row=1, col=1)
        return fig

    # --- reacting ------------------------------------------------------------------------
    def _on_network(self, change=None) -> None:
        self.set_network(le.load_network(self.network_picker.value))

    def set_network(self, network: le.Network) -> None:
        if not len(network):
            raise ValueError(f"{network.name!r} has no weight layers")
        self.network = network
        self.messages.clear()
        trainable = retraining.can_retrain(network)
        self.compression_controls.allow_training(trainable)
        self.sensitivity.allow(trainable)
        self.refresh()

    def _on_setting(self, what: str = "recipe") -> None:
        self.refresh()

    def _on_sensitivity(self, _button=None) -> None:
        self._sensitivity_wanted = True
        self.refresh()

    @property
    def recipe(self) -> le.Recipe:
        """How the controls compress every layer (with rates from sensitivity, the
        fraction stands for the share of all weights; see :meth:`resolved_recipe`)."""
        return self.compression_controls.recipe

    def resolved_recipe(self, network: le.Network, task=None) -> tuple[le.Recipe, dict | None]:
        """The recipe to apply, and the per-layer rates when they come from sensitivity:
        those that prune the slider's share of all weights where the validation accuracy
        suffers least."""
        recipe = self.recipe
        if not self.compression_controls.from_sensitivity:
            return recipe, None
        rates = retraining.rates_from_sensitivity(network, float(recipe.prune), task)
        return dataclasses.replace(recipe, prune=rates, global_prune=False), rates

    @property
    def accounting(self) -> Accounting:
        """How the controls price the compressed network."""
        return self.accounting_controls.accounting

    def refresh(self) -> None:
        """Recompute the report (in the background) and redraw."""
        if self.network is None:
            return
        network = self.network
        options = dataclasses.asdict(self.accounting)
        sensitivity = self._sensitivity_wanted or self.compression_controls.from_sensitivity

        def job(task):
            self.worker.bar.description = "sensitivity"
            table = retraining.sensitivity(network, task) if (
                sensitivity and retraining.can_retrain(network)) else None
            recipe, rates = self.resolved_recipe(network, task)
            self.worker.bar.description = "retraining"
            compressed = retraining.retrained(network, recipe, task) if recipe.retrain \
                else None
            self.worker.bar.description = "layers"
            layer_stats = self._layer_stats(network, recipe, compressed, task)
            report = network_report(network, recipe, formats=self.formats,
                                    layer_stats=layer_stats, **options)
            accuracy = retraining.accuracy(network, recipe, task)
            task.check()
            return report, accuracy, table, rates

        if self._first:  # the first view is computed before the page shows
            self._draw(job(Task()))
        else:
            self.worker.start(job, self._draw)

    def _layer_stats(self, network: le.Network, recipe: le.Recipe,
                     compressed: le.Network | None, task) -> list:
        """The layers' statistics, once per network and recipe: an accounting change
        (index bits, value bits, energy table) only prices them again."""
        cached = self._stats_cache
        if cached is not None and cached[0] is network and cached[1] == recipe:
            return cached[2]
        layer_stats = network_stats(network, recipe, progress=task.progress,
                                    compressed=compressed)
        self._stats_cache = (network, recipe, layer_stats)
        return layer_stats

    # --- drawing -------------------------------------------------------------------------
    def _draw(self, result) -> None:
        report, accuracy, table, rates = result
        self.report, self.accuracy = report, accuracy
        self.sensitivity.show(table, rates)
        layers = list(dict.fromkeys(r.layer for r in report.rows))
        by = {(r.layer, r.format): r for r in report.rows}
        totals = {r.format: r for r in report.totals()}
        dense = totals["dense"]
        with self.fig.batch_update():
            d, t = self.fig.data, self._t
            for name in self.formats:
                d[t[f"storage {name}"]].update(
                    x=layers, y=[by[layer, name].storage_bits / 8 for layer in layers])
                total = totals[name]
                d[t[f"gain {name}"]].y = [
                    dense.storage_bits / total.storage_bits,
                    _ratio(dense.adds + dense.mults, total.adds + total.mults),
                    _ratio(dense.energy_pj, total.energy_pj)]
                d[t[f"energy {name}"]].update(
                    x=layers, y=[by[layer, name].energy_pj / 1e6 for layer in layers])
            first = [by[layer, self.formats[0]] for layer in layers]
            d[t["entropy"]].update(x=layers, y=[r.H for r in first])
            d[t["p0"]].update(x=layers, y=[r.p0 for r in first])
        best = max((t for t in totals.values() if t.format != "dense"),
                   key=lambda t: dense.storage_bits / t.storage_bits)
        cards = [
            card("network", report.network, f"{len(layers)} layers"),
            card("weights", f"{dense.weights:,}", report.recipe.describe()),
            card("dense size", fmt_bytes(dense.storage_bits / 8),
                 f"{self.value_bits_picker.value}-bit values"),
            card("smallest", best.format.upper(), f"{fmt_bytes(best.storage_bits / 8)}, "
                 f"×{dense.storage_bits / best.storage_bits:.1f}"),
            card("entropy floor", fmt_bytes(dense.floor_bits / 8),
                 f"H = {dense.H:.3f} bits/weight"),
        ]
        if accuracy is not None:
            cards.append(accuracy_card(accuracy))
        self.cards.value = "".join(cards)
        self.totals_table.value = _totals_html(report)


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def _totals_html(report: NetworkReport) -> str:
    """The paper-style totals table."""
    totals = report.totals()
    dense = next(t for t in totals if t.format == "dense")
    head = ("<tr><th>format</th><th>storage</th><th>× vs dense</th><th>adds</th>"
            "<th>mults</th><th>energy µJ</th><th>× energy</th></tr>")
    body = "".join(
        f"<tr><td style='color:{format_color(t.format)};font-weight:600'>"
        f"{html.escape(t.format)}</td><td>{fmt_bytes(t.storage_bits / 8)}</td>"
        f"<td>{dense.storage_bits / t.storage_bits:.2f}</td><td>{t.adds:.3g}</td>"
        f"<td>{t.mults:.3g}</td><td>{t.energy_pj / 1e6:.4g}</td>"
        f"<td>{_ratio(dense.energy_pj, t.energy_pj):.2f}</td></tr>" for t in totals)
    return (f"<table class='lowentropy-totals' style='border-collapse:collapse;"
            f"font-size:13px;margin:6px 0' cellpadding='4'>{head}{body}</table>")
