"""Entropy map: which format wins across a grid of sparsity × number of shared values
(or × entropy), and why.

Every grid cell is a synthetic matrix (``lowentropy.synthetic.synthetic_layer``); its
statistics give storage, operations and energy of every format through ``le.compare``
without encoding (:mod:`dashboards.entropy_grid`). Measured time runs on a coarser grid
in a background thread. The layers of a network can be laid over the map as points.
"""

from __future__ import annotations

import contextlib
import html
import math
import threading
import time
from dataclasses import dataclass

import ipywidgets as w
import numpy as np
import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

import lowentropy as le

from .controls import AccountingControls
from .entropy_grid import (
    METRICS,
    CostGrid,
    cost_grid,
    entropy_rows,
    levels_axis,
    sparsity_axis,
    stats_grid,
    time_cells,
    winners,
)
from .ui import (
    Messages,
    Runner,
    card,
    dashboard_page,
    figure_widget,
    fmt_bytes,
    format_color,
    main_layout,
)

__all__ = ["EntropyMap", "SHAPES"]

#: Matrix shapes offered for the synthetic cells.
SHAPES = {"128 × 512": (128, 512), "256 × 1024": (256, 1024), "512 × 2048": (512, 2048)}

_UNITS = {"storage": "bits per weight", "ops": "operations per weight",
          "energy": "pJ per weight", "time": "ns per weight"}
_GAIN_WORDS = {"storage": "smaller", "ops": "fewer operations", "energy": "less energy",
               "time": "faster"}
_MAX_LABELLED_CELLS = 256  # print the gain in each cell up to 16 × 16 cells
_TIME_CELLS = 4  # measured-time grid: up to 4 × 4 cells


def _network_choices() -> list[tuple[str, str]]:
    names = list(le.list_networks()) if hasattr(le, "list_networks") else []
    return [("(none)", "")] + [(name, name) for name in names]


def _coarse(n: int, k: int) -> np.ndarray:
    """Up to ``k`` indices spread evenly over ``range(n)``, ends included."""
    return np.unique(np.round(np.linspace(0, n - 1, min(n, k))).astype(int))


_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"),
             (1e-9, "n"), (1e-12, "p"))


def _si(value: float, unit: str) -> str:
    """A number with an SI prefix: ``_si(1234.0, "ops")`` → ``'1.23 kops'``; ``"pJ"`` is
    converted to joules first (``1234 pJ`` → ``'1.23 nJ'``)."""
    if value is None or not np.isfinite(value):
        return "—"
    if unit == "pJ":
        value, unit = value * 1e-12, "J"
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    scale, prefix = _PREFIXES[-1]
    return f"{value / scale:.3g} {prefix}{unit}"


def _fmt_metric(metric: str, value: float) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    if metric == "storage":
        return fmt_bytes(value / 8)
    return _si(value, {"ops": "ops", "energy": "pJ", "time": "s"}[metric])


def _times(gain: float) -> str:
    """A gain as a short factor: ``×12``, ``×2.3``, ``×0.41``."""
    if not np.isfinite(gain):
        return "×∞" if gain == math.inf else ""
    return f"×{gain:.0f}" if gain >= 10 else f"×{gain:.1f}" if gain >= 1 else f"×{gain:.2f}"


def _gain(reference: float, value: float) -> float:
    if not (np.isfinite(reference) and np.isfinite(value)):
        return math.nan
    if value == reference:
        return 1.0
    return reference / value if value else math.inf


@dataclass
class _View:
    """What panels 1 and 2 show: display coordinates, the grid cell (row, column) behind
    each displayed cell (row -1: none), and the metric of every format there (``values``
    ``[format, row, column]``; ``extra``: other timed candidates, e.g. scipy's CSR)."""

    x: np.ndarray
    y: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    extra: dict[str, np.ndarray]
    metric: str


class EntropyMap:
    """The entropy map dashboard; ``.widget`` is what to display.

    Parameters
    ----------
    network : str or lowentropy.Network, optional
        Layers to lay over the map: a name from ``le.list_networks()`` or a network.
    shape : (int, int)
        Shape of the synthetic matrices (one of :data:`SHAPES`' values).
    resolution : int
        Cells per axis of the map.
    seed : int
        Seed of the synthetic matrices.
    time_budget : float
        Seconds of timed products per cell of the measured-time grid.
    time_cells : int
        Cells per axis of the measured-time grid (at most).
    synchronous : bool
        Run background work (grid, timing, network statistics) in the caller's thread
        (tests).
    """

    def __init__(self, network: str | le.Network | None = None, *,
                 shape: tuple[int, int] = (256, 1024), resolution: int = 12, seed: int = 0,
                 time_budget: float = 0.1, time_cells: int = _TIME_CELLS,
                 synchronous: bool = False) -> None:
        self._init_state(seed, time_budget, time_cells, synchronous)
        self._build_controls(shape, resolution)
        self._compute_grid_now()
        self._update_slice_options()
        self.costs = self._costs()
        fig = self._build_figure()
        self._draw(fig)
        self.fig = figure_widget(fig)
        self.widget = self._build_page()
        self._connect()
        self._draw_cards()
        self._open_network(network)

    def _init_state(self, seed: int, time_budget: float, time_cells: int,
                    synchronous: bool) -> None:
        """Settings, background runners and caches (no widgets yet)."""
        self.seed = int(seed)
        self.time_budget = float(time_budget)
        self.time_cells = int(time_cells)
        self.messages = Messages()
        self.grid_job = Runner(self.messages, "computing", synchronous=synchronous)
        self.timer = Runner(self.messages, "timing", synchronous=synchronous)
        self.network_job = Runner(self.messages, "layers", synchronous=synchronous)
        self._lock = threading.RLock()
        self._grids: dict[tuple, np.ndarray] = {}
        self._time_cache: dict = {}
        self.network: le.Network | None = None
        self.layer_stats: list[tuple[le.Layer, le.Stats]] = []
        self.last_grid_s = 0.0
        self.last_cost_s = 0.0
        self._quiet = False
        self._slice_sparsity = 0.9

    def _build_controls(self, shape: tuple[int, int], resolution: int) -> None:
        """The control widgets, at their starting values (nothing observed yet)."""
        style = {"description_width": "96px"}
        wide = w.Layout(width="310px")
        shape_label = next((k for k, v in SHAPES.items() if v == tuple(shape)), None)
        if shape_label is None:
            raise ValueError(f"shape must be one of {list(SHAPES.values())}, got {shape!r}")
        self.shape_picker = w.Dropdown(options=list(SHAPES.items()), value=SHAPES[shape_label],
                                       description="matrix", style=style, layout=wide)
        self.resolution_slider = w.IntSlider(value=int(resolution), min=4, max=24,
                                             description="grid cells", continuous_update=False,
                                             style=style, layout=wide)
        self.y_toggle = w.ToggleButtons(options=[("shared values K", "K"),
                                                 ("entropy H", "H")], value="K",
                                        description="y axis", style=style)
        self.y_toggle.style.button_width = "auto"
        self.metric_picker = w.Dropdown(
            options=[(label, key) for key, (label, _) in METRICS.items()], value="storage",
            description="metric", style=style, layout=wide)
        self.format_picker = w.Dropdown(options=[f for f in le.FORMATS if f != "dense"],
                                        value="cer" if "cer" in le.FORMATS else None,
                                        description="panel 2 format", style=style,
                                        layout=wide)
        self.accounting_controls = AccountingControls(width="310px", label_width="96px")
        acc = self.accounting_controls
        self.policy_picker, self.value_bits_picker = acc.policy_picker, acc.value_bits_picker
        self.batch_picker, self.table_picker = acc.batch_picker, acc.table_picker
        self.slice_picker = w.SelectionSlider(options=[("0%", 0)], description="slice at",
                                              continuous_update=False, style=style,
                                              layout=wide)
        self.network_picker = w.Dropdown(options=_network_choices(), value="",
                                         description="network", style=style, layout=wide)
        self.cards = w.HTML()

    def _build_page(self) -> w.Widget:
        """The page: title, the control column, and the cards, messages and figure."""
        controls = w.VBox([
            w.HTML("<b>Grid of synthetic matrices</b>"), self.shape_picker,
            self.resolution_slider, self.y_toggle, self.grid_job.bar,
            w.HTML("<b>What wins</b>"), self.metric_picker, self.format_picker,
            self.slice_picker, self.timer.bar,
            w.HTML("<b>Accounting</b>"), self.accounting_controls.widget,
            w.HTML("<b>Overlay a network</b>"), self.network_picker, self.network_job.bar,
        ], layout=w.Layout(width="330px", min_width="330px"))
        title = w.HTML(
            "<h2 style='margin:4px 0'>lowentropy · entropy map</h2>"
            "<div style='color:#555'>Which format stores and multiplies a pruned, quantized "
            "matrix most cheaply? Each cell is a synthetic Gaussian matrix pruned to a "
            "sparsity and quantized to K shared values; colours name the cheapest format "
            "(Wiedemann et al., arXiv 1805.10692). Unpruned cells (0%) are quantized to a "
            "uniform grid with 0 a level, which rounds small weights to 0: hover a cell for "
            "its real sparsity, K and entropy; click it to move the slice below.</div>")
        main = w.VBox([self.cards, self.messages.widget, self.fig],
                      layout=main_layout())
        return dashboard_page("entropy-map", title, controls, main)

    def _connect(self) -> None:
        """Observe the controls and the figure's clicks (every callback guarded)."""
        g = self.messages.guard
        for control in (self.shape_picker, self.resolution_slider, self.y_toggle):
            control.observe(g(self._on_grid), "value")
        self.accounting_controls.on_change(g(lambda what: self._on_batch() if what == "batch"
                                             else self._on_accounting()))
        self.metric_picker.observe(g(self._on_metric), "value")
        self.format_picker.observe(g(self._on_view), "value")
        self.slice_picker.observe(g(self._on_slice), "value")
        self.network_picker.observe(g(self._on_network), "value")
        for k in (self._t["winner"], self._t["gain"]):
            self.fig.data[k].on_click(g(self._on_click))

    def _open_network(self, network: str | le.Network | None) -> None:
        """Lay the starting network (a name or a loaded one) over the map, if any."""
        g = self.messages.guard
        if isinstance(network, le.Network):
            g(self.add_network)(network)
        elif network:
            names = [value for _, value in self.network_picker.options]
            if network not in names:
                self.messages.error(ValueError(
                    f"unknown network {network!r}; choose one of {names[1:]}"))
            else:
                self.network_picker.value = network

    # --- the grid ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.shape_picker.value)

    def _axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Sparsities and numbers of shared values computed for the current controls (twice
        as many values in entropy mode, to fill the entropy bins)."""
        res = int(self.resolution_slider.value)
        levels = levels_axis(res if self.y_toggle.value == "K" else 2 * res)
        return sparsity_axis(res), levels

    def _grid_key(self) -> tuple:
        """(shape, seed, sparsities, levels, y mode): what a grid is computed for."""
        sparsities, levels = self._axes()
        return (self.shape, self.seed, tuple(sparsities), tuple(levels), self.y_toggle.value)

    def _compute_grid_now(self, progress=None) -> None:
        key = self._grid_key()
        start = time.perf_counter()
        grid = self._grids.get(key)
        if grid is None:
            grid = stats_grid(key[0], key[2], key[3], key[1], progress=progress)
        self._set_grid(key, grid, time.perf_counter() - start)

    def _set_grid(self, key: tuple, grid: np.ndarray, seconds: float) -> None:
        with self._lock:
            if len(self._grids) >= 6:
                self._grids.pop(next(iter(self._grids)))
            self._grids[key] = grid
            self.key = key
            self.grid = grid
            self.sparsities = np.array(key[2])
            self.levels = np.array(key[3])
            self.last_grid_s = seconds
            res = len(self.sparsities)
            if key[4] == "H":
                H = np.array([[s.H for s in row] for row in grid])
                top = float(H.max()) if H.size else 1.0
                self.bins = (np.arange(res) + 0.5) * top / res
                self.row_of = entropy_rows(grid, self.bins)
            else:
                self.bins = None
                self.row_of = np.repeat(np.arange(len(self.levels))[:, None],
                                        len(self.sparsities), axis=1)

    def _costs(self) -> CostGrid:
        costs = cost_grid(self.grid, policy=self.policy_picker.value,
                          value_bits=int(self.value_bits_picker.value),
                          batch=int(self.batch_picker.value), table=self.table_picker.value)
        self.last_cost_s = costs.seconds
        return costs

    def _update_slice_options(self) -> None:
        """Offer the grid's sparsities; keep the slice nearest to where it was."""
        options = [(f"{x:.1%}", j) for j, x in enumerate(self.sparsities)]
        target = int(np.argmin(np.abs(self.sparsities - self._slice_sparsity)))
        self._quiet = True
        try:
            self.slice_picker.options = options
            self.slice_picker.value = target
        finally:
            self._quiet = False

    # --- callbacks -----------------------------------------------------------------------
    def _on_grid(self, change=None) -> None:
        key = self._grid_key()
        if key in self._grids:  # through the runner all the same: cancels a running job
            grid = self._grids[key]
            self.grid_job.start(lambda task: (key, grid, 0.0), self._grid_done)
            return

        def job(task):
            start = time.perf_counter()
            grid = stats_grid(key[0], key[2], key[3], key[1], progress=task.progress)
            return key, grid, time.perf_counter() - start

        self.grid_job.start(job, self._grid_done)

    def _grid_done(self, result) -> None:
        key, grid, seconds = result
        with self._lock:
            self._set_grid(key, grid, seconds)
            self._update_slice_options()
            self.costs = self._costs()
            self.refresh()
        self._start_timing()

    def _on_accounting(self, change=None) -> None:
        with self._lock:
            self.costs = self._costs()
            self.refresh()

    def _on_batch(self, change=None) -> None:
        self._on_accounting()
        self._start_timing()

    def _on_metric(self, change=None) -> None:
        self.refresh()
        self._start_timing()

    def _on_view(self, change=None) -> None:
        if not self._quiet:
            self.refresh()

    def _on_slice(self, change=None) -> None:
        if not self._quiet:
            self._slice_sparsity = float(self.sparsities[int(self.slice_picker.value)])
            self.refresh()

    def _on_click(self, trace, points, state=None) -> None:
        if points.xs:
            x = float(points.xs[0])
            self.slice_picker.value = int(np.argmin(np.abs(self.sparsities - x)))

    # --- measured time -------------------------------------------------------------------
    def _time_layout(self) -> tuple[np.ndarray, np.ndarray]:
        """Display rows and columns of the measured-time grid."""
        ny, nx = self.row_of.shape
        return _coarse(ny, self.time_cells), _coarse(nx, self.time_cells)

    def time_cells_wanted(self) -> list[tuple[float, int]]:
        """(sparsity, levels) of the cells the measured-time view needs."""
        ri, ci = self._time_layout()
        cells = []
        for a in ri:
            for c in ci:
                r = self.row_of[a, c]
                if r >= 0:
                    cells.append((float(self.sparsities[c]), int(self.levels[r])))
        return cells

    def _start_timing(self) -> None:
        """Measure the cells the time view needs (in the background); leaving the time
        view cancels a running measurement after its current cell (measured cells stay
        cached)."""
        if self.metric_picker.value != "time":
            self.timer.cancel()
            return
        shape, batch, cells = self.shape, int(self.batch_picker.value), self.time_cells_wanted()
        budget, cache, seed = self.time_budget, self._time_cache, self.seed

        def job(task):
            return time_cells(shape, cells, seed=seed, batch=batch, budget=budget,
                              cache=cache, progress=task.progress)

        self.timer.start(job, self._timing_done)

    def _timing_done(self, result) -> None:
        self.refresh()

    def measured(self, sparsity: float, levels: int) -> dict[str, float] | None:
        """Measured median seconds per format of one cell at the current matrix shape and
        batch, or None when it has not been measured."""
        return self._time_cache.get((self.shape, self.seed, int(self.batch_picker.value),
                                     float(sparsity), int(levels)))

    # --- network overlay -----------------------------------------------------------------
    def _on_network(self, change=None) -> None:
        name = self.network_picker.value
        if not name:  # through the runner: cancels a network still loading
            self.network_job.start(lambda task: (None, []), self._network_done)
            return

        def job(task):
            task.progress(0, 1)
            return self._layer_stats(le.load_network(name), task.progress)

        self.messages.info(f"loading {name} and the statistics of its layers …")
        self.network_job.start(job, self._network_done)

    def add_network(self, network: le.Network) -> None:
        """Lay the layers of ``network`` over the map (statistics in the background)."""
        if not isinstance(network, le.Network):
            raise TypeError(f"add_network takes a lowentropy.Network, got "
                            f"{type(network).__name__}")
        if not len(network):
            raise ValueError(f"network {network.name!r} has no layers")
        self.network_job.start(lambda task: self._layer_stats(network, task.progress),
                               self._network_done)

    @staticmethod
    def _layer_stats(network: le.Network, progress) -> tuple[le.Network, list]:
        out = []
        for i, layer in enumerate(network.layers, start=1):
            out.append((layer, le.stats(layer.matrix)))
            progress(i, len(network.layers))
        return network, out

    def _network_done(self, result) -> None:
        network, stats = result
        with self._lock:
            self.network, self.layer_stats = network, stats
            self.messages.clear()
            self.refresh()

    # --- the figure ------------------------------------------------------------------------
    def _build_figure(self) -> go.Figure:
        fig = make_subplots(
            rows=2, cols=2, specs=[[{}, {}], [{"colspan": 2}, None]], row_heights=[0.6, 0.4],
            horizontal_spacing=0.13, vertical_spacing=0.14,
            subplot_titles=("Cheapest format", "Gain over dense", "Why"))
        formats = list(le.FORMATS)
        t: dict[str, int] = {}

        def add(key, trace, row, col):
            t[key] = len(fig.data)
            fig.add_trace(trace, row=row, col=col)

        n = len(formats)
        scale = []
        for k, name in enumerate(formats):
            scale += [[k / n, format_color(name)], [(k + 1) / n, format_color(name)]]
        add("winner", go.Heatmap(
            z=[[None]], x=[0], y=[0], colorscale=scale, zmin=-0.5, zmax=n - 0.5,
            showscale=False, hovertext=[[""]], text=[[""]], texttemplate="%{text}",
            textfont=dict(size=11), xgap=1, ygap=1, name="winner",
            hovertemplate="%{hovertext}<extra></extra>"), 1, 1)
        for name in formats:
            add(f"swatch {name}", go.Scatter(
                x=[None], y=[None], mode="markers", name=name.upper(), legendgroup=name,
                marker=dict(symbol="square", size=14, color=format_color(name))), 1, 1)
        add("gain", go.Heatmap(
            z=[[None]], x=[0], y=[0], colorscale=plotly.colors.diverging.RdBu, zmid=0,
            hovertext=[[""]], text=[[""]], texttemplate="%{text}", textfont=dict(size=11),
            xgap=1, ygap=1, name="gain", hovertemplate="%{hovertext}<extra></extra>",
            colorbar=dict(title=dict(text="gain", side="right"), len=0.42, y=0.77, x=1.0,
                          thickness=14)), 1, 2)
        add("break-even", go.Contour(
            z=[[None]], x=[0], y=[0], contours=dict(start=0, end=0, size=1, coloring="none"),
            line=dict(color="black", width=3), showscale=False, hoverinfo="skip",
            name="gain = 1 (break-even)", showlegend=True), 1, 2)
        for key, col in (("layers 1", 1), ("layers 2", 2)):
            add(key, go.Scatter(
                x=[], y=[], mode="markers+text", name="network layers",
                legendgroup="layers", showlegend=col == 1, text=[], textposition="top center",
                textfont=dict(size=11, color="black"), hovertext=[], cliponaxis=False,
                hovertemplate="%{hovertext}<extra></extra>",
                marker=dict(size=11, color="white", line=dict(color="black", width=2))),
                1, col)
        for key, col in (("slice 1", 1), ("slice 2", 2)):
            add(key, go.Scatter(x=[], y=[], mode="lines", name="slice", showlegend=False,
                                line=dict(color="black", dash="dot", width=2),
                                hoverinfo="skip"), 1, col)
        for name in formats:
            add(f"line {name}", go.Scatter(
                x=[], y=[], mode="lines+markers", name=name.upper(), legendgroup=name,
                showlegend=False, line=dict(color=format_color(name), width=3),
                marker=dict(size=7, color=format_color(name)), customdata=[],
                hovertemplate=(f"{name.upper()}: %{{y:.3g}} at H = %{{x:.2f}} bits"
                               "<br>%{customdata}<extra></extra>")), 2, 1)
        add("floor", go.Scatter(
            x=[], y=[], mode="lines", name="entropy floor H + K·b/(mn)",
            line=dict(color=format_color("entropy floor"), dash="dash", width=3),
            hovertemplate="entropy floor %{y:.3g} bits per weight<extra></extra>"), 2, 1)
        self._t = t
        fig.update_layout(
            height=920, template="plotly_white", font=dict(size=14),
            margin=dict(l=70, r=30, t=60, b=90), uirevision="keep",
            legend=dict(orientation="h", x=0, y=-0.09, title=dict(text="colours:")),
            hoverlabel=dict(font_size=13),
        )
        fig.update_xaxes(tickformat=".0%", row=1, col=1)
        fig.update_xaxes(tickformat=".0%", row=1, col=2)
        for col in (1, 2):
            fig.update_xaxes(title_text="sparsity set by pruning (share of zeros)", row=1,
                             col=col)
        fig.update_xaxes(title_text="entropy H of the matrix (bits per weight)", row=2, col=1)
        return fig

    # --- drawing -----------------------------------------------------------------------------
    def _view(self) -> _View:
        metric = self.metric_picker.value
        formats = self.costs.formats
        rows = self.row_of
        cols = np.repeat(np.arange(len(self.sparsities))[None, :], rows.shape[0], axis=0)
        x = self.sparsities
        y = np.log2(self.levels) if self.bins is None else self.bins
        extra: dict[str, np.ndarray] = {}
        if metric == "time":
            ri, ci = self._time_layout()
            rows, cols, x, y = rows[np.ix_(ri, ci)], cols[np.ix_(ri, ci)], x[ci], y[ri]
            found_at = {(a, b): self.measured(x[b], self.levels[r])
                        for (a, b), r in np.ndenumerate(rows) if r >= 0}
            names = sorted({n for t in found_at.values() if t for n in t} - set(formats))
            values = np.full((len(formats), *rows.shape), np.nan)
            for name in names:
                extra[name] = np.full(rows.shape, np.nan)
            for (a, b), found in found_at.items():
                if found:
                    for f, name in enumerate(formats):
                        values[f, a, b] = found.get(name, np.nan)
                    for name in names:
                        extra[name][a, b] = found.get(name, np.nan)
        else:
            table = self.costs.values[metric]
            values = np.where(rows[None] >= 0,
                              table[:, np.maximum(rows, 0), cols], np.nan)
        return _View(x, y, rows, cols, values, extra, metric)

    def _hover(self, v: _View, a: int, b: int, win: int) -> str:
        r = v.rows[a, b]
        if r < 0:
            return (f"sparsity {v.x[b]:.1%}, H ≈ {v.y[a]:.2f} bits:<br>no matrix of this "
                    "sparsity has this entropy")
        s = self.grid[r, v.cols[a, b]]
        formats = self.costs.formats
        head = (f"<b>pruned {v.x[b]:.1%}, {self.levels[r]} levels</b> → sparsity "
                f"{s.sparsity:.1%}, K = {s.K} distinct values, H = {s.H:.2f} bits<br>")
        vals = v.values[:, a, b]
        if win < 0:
            return head + "not measured yet"
        dense = vals[formats.index("dense")] if "dense" in formats else math.nan
        csr = vals[formats.index("csr")] if "csr" in formats else math.nan
        best = vals[win]
        ties = [formats[f].upper() for f in range(len(formats)) if f != win and vals[f] == best]
        lines = [head + f"cheapest: <b>{formats[win].upper()}</b>"
                 + (f" (tie with {', '.join(ties)})" if ties else "")
                 + f" · ×{_gain(dense, best):.2f} vs dense · ×{_gain(csr, best):.2f} vs CSR"]
        for f, name in enumerate(formats):
            mark = "◀" if f == win else ""
            lines.append(f"{name.upper()}: {_fmt_metric(v.metric, vals[f])} {mark}")
        for name, arr in v.extra.items():
            lines.append(f"{name}: {_fmt_metric(v.metric, arr[a, b])}")
        return "<br>".join(lines)

    def _draw(self, fig) -> None:
        batch = fig.batch_update() if isinstance(fig, go.FigureWidget) else (
            contextlib.nullcontext())
        with batch:
            self._draw_maps(fig)
            self._draw_slice(fig)
            self._draw_layers(fig)

    def refresh(self) -> None:
        """Redraw every view for the current controls (no recomputation)."""
        with self._lock:
            self._draw(self.fig)
            self._draw_cards()

    def _draw_maps(self, fig) -> None:
        t, d = self._t, fig.data
        v = self._view()
        formats = self.costs.formats
        metric = v.metric
        win = winners(v.values)
        ny, nx = win.shape
        labelled = ny * nx <= _MAX_LABELLED_CELLS
        dense = v.values[formats.index("dense")]
        best = np.take_along_axis(v.values, np.maximum(win, 0)[None], axis=0)[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            win_gain = dense / best
        hover = [[self._hover(v, a, b, int(win[a, b])) for b in range(nx)] for a in range(ny)]
        d[t["winner"]].update(
            x=v.x, y=v.y, z=np.where(win >= 0, win, np.nan), hovertext=hover,
            text=[[_times(g) if labelled else "" for g in row] for row in win_gain])
        chosen = self.format_picker.value
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = dense / v.values[formats.index(chosen)]
            z = np.log2(gain)
        z = np.where(np.isfinite(z), z, np.nan)
        finite = np.abs(z[np.isfinite(z)])  # colours saturate beyond the 90th percentile
        top = float(min(8, max(1, math.ceil(np.percentile(finite, 90))))) if finite.size else 1.0
        step = 1 if top <= 4 else 2
        ticks = step * np.arange(-(top // step), top // step + 1)
        gain_hover = [[self._gain_hover(v, a, b, chosen, gain[a, b]) for b in range(nx)]
                      for a in range(ny)]
        d[t["gain"]].update(
            x=v.x, y=v.y, z=z, zmin=-top, zmax=top, hovertext=gain_hover,
            text=[[_times(g) if labelled else "" for g in row] for row in gain])
        d[t["gain"]].colorbar.update(
            tickvals=ticks.tolist(),
            ticktext=[f"×{2 ** k:g}" if k >= 0 else f"×1/{2 ** -k:g}" for k in ticks])
        d[t["break-even"]].update(x=v.x, y=v.y, z=z)

        label, _ = METRICS[metric]
        where = "measured on a coarser grid" if metric == "time" else "per input vector"
        notes = fig.layout.annotations
        if metric == "time" and any(self.measured(*c) is None
                                    for c in self.time_cells_wanted()):
            where = "measuring … (see the progress bar)"
        notes[0].text = f"Cheapest format by {label} ({where})"
        notes[1].text = f"Gain of {chosen.upper()} over dense; black line: gain 1"
        self._style_axes(fig)

    def _gain_hover(self, v: _View, a: int, b: int, chosen: str, gain: float) -> str:
        r = v.rows[a, b]
        if r < 0:
            return "no matrix of this sparsity has this entropy"
        s = self.grid[r, v.cols[a, b]]
        head = (f"pruned {v.x[b]:.1%}, {self.levels[r]} levels → sparsity {s.sparsity:.1%}, "
                f"K = {s.K}, H = {s.H:.2f} bits<br>")
        if not np.isfinite(gain):
            return head + "not measured yet"
        word = _GAIN_WORDS[v.metric]
        verdict = f"×{gain:.2f} {word}" if gain >= 1 else f"×{1 / gain:.2f} worse"
        return head + f"{chosen.upper()} vs dense: {verdict}"

    def _y_axis(self) -> dict:
        if self.bins is None:
            y = np.log2(self.levels)
            ticks = [k for k in (2, 4, 8, 16, 32, 64, 128, 256, 512) if
                     self.levels[0] <= k <= self.levels[-1]]
            return dict(title_text="shared values K (levels, log scale)",
                        tickvals=np.log2(ticks).tolist(), ticktext=[str(k) for k in ticks],
                        range=self._edges(y))
        return dict(title_text="entropy H (bits per weight)", tickvals=None, ticktext=None,
                    range=self._edges(self.bins))

    @staticmethod
    def _edges(c: np.ndarray) -> list[float]:
        step = float(np.diff(c).min()) if c.size > 1 else 1.0
        return [float(c[0]) - step / 2, float(c[-1]) + step / 2]

    def _style_axes(self, fig) -> None:
        ax = self._y_axis()
        x_range = self._edges(self.sparsities)
        for name in ("yaxis", "yaxis2"):
            fig.layout[name].update(**ax)
        for name in ("xaxis", "xaxis2"):
            fig.layout[name].range = x_range

    def _draw_slice(self, fig) -> None:
        t, d = self._t, fig.data
        metric = self.metric_picker.value
        j = int(self.slice_picker.value)
        j = min(max(j, 0), len(self.sparsities) - 1)
        s_j = float(self.sparsities[j])
        m, n = self.shape
        formats = self.costs.formats
        column = self.grid[:, j]
        if metric == "time":
            ci = self._time_layout()[1]
            jt = int(ci[np.argmin(np.abs(ci - j))])
            s_j = float(self.sparsities[jt])
            found = [self.measured(s_j, k) for k in self.levels]
            rows = [i for i, t in enumerate(found) if t]
            per = {name: [found[i].get(name, np.nan) / (m * n) * 1e9 for i in rows]
                   for name in formats}
            column = self.grid[:, jt]
        else:
            rows = list(range(len(self.levels)))
            per = {name: (self.costs.values[metric][f, :, j] / (m * n)).tolist()
                   for f, name in enumerate(formats)}
        H = [column[i].H for i in rows]
        info = [f"K = {column[i].K} values (levels {self.levels[i]})" for i in rows]
        order = np.argsort(H, kind="stable")
        for name in formats:
            d[t[f"line {name}"]].update(x=[H[o] for o in order],
                                        y=[per[name][o] for o in order],
                                        customdata=[info[o] for o in order])
        floor = d[t["floor"]]
        if metric == "storage":
            vb = int(self.value_bits_picker.value)
            floor.update(x=[H[o] for o in order], y=[
                column[rows[o]].entropy_floor_bits(vb) / (m * n) for o in order], visible=True)
        else:
            floor.update(x=[], y=[], visible=False)
        y_lo, y_hi = self._y_axis()["range"]
        for key in ("slice 1", "slice 2"):
            d[t[key]].update(x=[s_j, s_j], y=[y_lo, y_hi])
        label, _ = METRICS[metric]
        fig.layout.annotations[2].text = (
            f"Why: {label} per weight vs entropy, along sparsity {s_j:.1%} "
            "(dotted line above; click a cell to move it)")
        fig.layout.yaxis3.title.text = _UNITS[metric]
        spread = [v for name in formats for v in per[name] if np.isfinite(v) and v > 0]
        wide = bool(spread) and max(spread) > 20 * min(spread)
        fig.layout.yaxis3.type = "log" if wide and metric != "storage" else "linear"

    def _draw_layers(self, fig) -> None:
        """Layers as points; one off the map is drawn at its edge, an arrow in its label."""
        t, d = self._t, fig.data
        xs, ys, labels, hover = [], [], [], []
        x_lo, x_hi = self._edges(self.sparsities)
        y_lo, y_hi = self._y_axis()["range"]
        named = len(self.layer_stats) <= 12
        for layer, s in self.layer_stats:
            y = math.log2(max(s.K, 1)) if self.bins is None else s.H
            x = s.sparsity
            arrow = ""
            if y > y_hi:
                y, arrow = y_hi, "↑"
            elif y < y_lo:
                y, arrow = y_lo, "↓"
            if x > x_hi:
                x, arrow = x_hi, arrow + "→"
            xs.append(x)
            ys.append(y)
            labels.append(f"{layer.name if named else ''}{arrow}")
            shape = "×".join(map(str, layer.matrix.shape))
            off = "<br>(off the map: drawn at its edge)" if arrow else ""
            hover.append(f"<b>{html.escape(layer.name)}</b> {shape}<br>sparsity "
                         f"{s.sparsity:.1%} · K = {s.K:,} · H = {s.H:.2f} bits{off}")
        for key in ("layers 1", "layers 2"):
            d[t[key]].update(x=xs, y=ys, text=labels, hovertext=hover)

    def _draw_cards(self) -> None:
        v_win = winners(self._view().values)
        formats = self.costs.formats
        filled = int((v_win >= 0).sum())
        counts = {name: int((v_win == f).sum()) for f, name in enumerate(formats)}
        m, n = self.shape
        cells = self.grid.size
        parts = [
            card("matrices", f"{cells}", f"{m}×{n} each, {m * n:,} weights"),
            card("grid statistics", f"{self.last_grid_s * 1e3:.0f} ms",
                 "all cells, no encoding" if self.last_grid_s else "from the cache"),
            card("costs of all formats", f"{self.last_cost_s * 1e3:.0f} ms", "le.compare"),
        ]
        for name, c in counts.items():
            if c:
                parts.append(card(f"{name.upper()} wins", f"{c} of {filled}", "cells"))
        if self.network is not None:
            parts.append(card("network", self.network.name,
                              f"{len(self.layer_stats)} layers drawn as points"))
        self.cards.value = "".join(parts)

    def describe(self) -> str:
        """One line about what is shown (for logs and tests)."""
        m, n = self.shape
        return (f"{len(self.levels)}×{len(self.sparsities)} grid of {m}×{n} matrices, "
                f"y = {self.y_toggle.value}, metric {self.metric_picker.value}")
