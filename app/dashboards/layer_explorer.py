"""Layer explorer: pick a network and a layer, move pruning and quantization, and watch
entropy, storage, operations, energy and measured dot-product time of every format.

The main dashboard (``app/layer_explorer.ipynb``). Everything it computes on a slider
move comes from :mod:`dashboards.compression` (no encoding: statistics give the costs);
the measured times run in a background thread with a progress bar.
"""

from __future__ import annotations

import html
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

import lowentropy as le
from lowentropy.bench import read_bandwidth

from . import retraining, timing_process
from .compression import (
    Accounting,
    Analysis,
    Compressed,
    compress_and_count,
    price,
    value_histogram,
)
from .controls import AccountingControls, CompressionControls
from .model import fmt_ratio, shared_values_note, time_within_limits, with_layer
from .paths import checked_path
from .ui import (
    Messages,
    Runner,
    accuracy_card,
    add_trace,
    card,
    dashboard_page,
    figure_widget,
    fmt_bytes,
    format_color,
    main_layout,
)
from .upload import LimitedUpload

__all__ = ["LayerExplorer", "ARRAY_COLORS", "MAX_UPLOAD_BYTES"]

#: Colours of the stored arrays in the storage panel.
#: No colour of the figure's legend is used twice (the entropy floor is vermilion, the
#: operations slate and dark red, the bandwidth limit black).
_KNOWN_ARRAY_COLORS = {
    "values": "#7f7f7f", "col_idx": "#56b4e9", "row_ptr": "#cc79a7", "omega": "#332288",
    "omega_idx": "#f0e442", "omega_ptr": "#009e73", "codes": "#8c564b", "lengths": "#e69f00",
    "bits": "#17becf",
}
_SPARE_ARRAY_COLORS = ("#bcbd22", "#9467bd", "#aec7e8", "#ff9896", "#c5b0d5")
_OPERATION_COLORS = {"adds": "#44546a", "mults": "#b2182b"}


def _array_colors() -> dict[str, str]:
    """One colour per array name of every registered format, in registry order."""
    names = list(dict.fromkeys(a for F in le.FORMATS.values() for a in F.array_names))
    spare = iter(_SPARE_ARRAY_COLORS * len(names))
    return {a: _KNOWN_ARRAY_COLORS.get(a) or next(spare) for a in names}


#: The storage panel's stacked bars: one per array name of the registered formats.
ARRAY_COLORS = _array_colors()

#: Largest model file accepted from the upload button (``LOWENTROPY_MAX_UPLOAD_MB``,
#: 64 MB by default). The button does not send a larger file (it checks the size in the
#: page and sends only the size: the page then says why). The server refuses a websocket
#: message above ``Voila.tornado_settings.websocket_max_message_size`` in
#: ``app/voila.json`` (72 MB) before reading it, so a larger limit here needs that one
#: raised too.
MAX_UPLOAD_BYTES = int(os.environ.get("LOWENTROPY_MAX_UPLOAD_MB", "64")) * 2**20

#: Slider input is throttled: a change that comes while a refresh waits or runs, or
#: within this many seconds of the last one, waits this long for more input before it
#: starts (the changes of a held key are drawn once the key pauses this long); a change
#: after a pause starts at once.
THROTTLE_S = 0.05

#: Seconds the live timing waits after the last change before it starts (the next change
#: within that time, or while it runs, cancels it: it never competes with a refresh).
TIMING_DELAY_S = 0.6

#: The panels (row by row) and their titles; a title is the layout annotation at the
#: panel's position in this order.
_PANELS = {
    "weights": "Weights: histogram and shared values",
    "storage": "Storage (stacked by array) vs entropy floor",
    "ops": "Operations per input vector",
    "energy": "Energy per input vector (pJ)",
    "time": "Measured time of W @ x and bandwidth limit",
    "matrix": "The matrix: top-left corner, ω₀ blank",
}


def _title(fig, panel: str):
    """The title annotation of a panel of the explorer's figure."""
    return fig.layout.annotations[list(_PANELS).index(panel)]


def _network_choices() -> list[str]:
    return list(le.list_networks()) if hasattr(le, "list_networks") else []


class LayerExplorer:
    """The layer explorer dashboard; ``.widget`` is what to display.

    Parameters
    ----------
    network : str or lowentropy.Network, optional
        A name from ``le.list_networks()`` (the first one by default) or a loaded network.
    measure : bool
        Time the formats after every change (in a background thread).
    synchronous : bool
        Run the timing in the caller's thread (tests).
    """

    def __init__(self, network: str | le.Network | None = None, *, measure: bool = True,
                 synchronous: bool = False) -> None:
        self.messages = Messages()
        self.timer = Runner(self.messages, "timing", synchronous=synchronous)
        self._synchronous = synchronous
        self.timing_process: timing_process.TimingProcess | None = None  # when measuring
        self.timing_jobs: list[int] = []  # the batch of every live timing started (tests)
        # refreshes after the first run here, throttled: changes within THROTTLE_S of each
        # other are drawn once (each cancels the refresh it finds waiting or running); the
        # first change after a pause starts at once
        self.refresher = Runner(self.messages, "computing", synchronous=synchronous)
        self._last_refresh_start = -np.inf  # time.monotonic() of the last refresh asked for
        self._compressed: Compressed | None = None  # cache: the current layer and recipe
        self._layer_id = 0
        self._drawn: dict[str, object] = {}  # what each part of the figure shows
        self.network: le.Network | None = None
        self.analysis: Analysis | None = None
        self._original: np.ndarray | None = None
        self._hist = (np.zeros(0), np.zeros(0))
        self._bandwidth: float | None = None
        self._accuracy_after: retraining.Accuracy | None = None
        self._cache_layer = -1
        self.last_refresh_s = 0.0
        self.timings: dict | None = None

        style = {"description_width": "88px"}

        def lay() -> w.Layout:  # one per widget: a shared layout hides them together
            return w.Layout(width="300px")

        choices = _network_choices()
        self.network_picker = w.Dropdown(options=choices, description="network",
                                         style=style, layout=lay())
        self.path_text = w.Text(placeholder="or a model file path", description="file",
                                style=style, layout=w.Layout(width="230px"))
        self.path_button = w.Button(description="load", layout=w.Layout(width="64px"))
        self.upload = LimitedUpload(accept=".npz,.npy,.safetensors,.onnx,.pt,.pth,.h5,.keras",
                                    description="upload model", max_bytes=MAX_UPLOAD_BYTES,
                                    layout=lay())
        self.upload_note = w.HTML(
            f"<span style='font-size:11px;color:#666'>uploads up to "
            f"{fmt_bytes(MAX_UPLOAD_BYTES)}; larger files: type their path</span>")
        self.layer_picker = w.Dropdown(options=[], description="layer", style=style,
                                       layout=lay())
        self.compression_controls = CompressionControls(width="300px", label_width="88px",
                                                        retrain=True)
        self.accounting_controls = AccountingControls(width="300px", label_width="88px",
                                                      batch_label="timing batch")
        c, acc = self.compression_controls, self.accounting_controls
        self.prune_slider, self.quantizer = c.prune_slider, c.quantizer
        self.bits_slider, self.clusters_slider = c.bits_slider, c.clusters_slider
        self.policy_picker, self.value_bits_picker = acc.policy_picker, acc.value_bits_picker
        self.table_picker, self.batch_picker = acc.table_picker, acc.batch_picker
        self.measure_box = w.Checkbox(value=measure, description="measure time live",
                                      indent=False)
        if measure:
            self._start_timing_process()
        self.cards = w.HTML()
        self.notes = w.HTML()  # plain-words notes about what is shown (not errors)
        self.notes.add_class("lowentropy-notes")
        self.timing_notes: dict[str, str] = {}
        # The first view is drawn into a plain figure, which becomes the FigureWidget only
        # then: voila loses changes made to a FigureWidget before the page connects.
        self.fig = self._build_figure()
        self._ready = False

        controls = w.VBox([
            w.HTML("<b>Network and layer</b>"), self.network_picker,
            w.HBox([self.path_text, self.path_button]), self.upload, self.upload_note,
            self.layer_picker,
            w.HTML("<b>Compression</b>"), c.widget, self.refresher.bar,
            w.HTML("<b>Accounting</b>"), self.policy_picker, self.value_bits_picker,
            self.table_picker, w.HTML("<b>Measured time</b>"), self.batch_picker,
            self.measure_box, self.timer.bar,
        ], layout=w.Layout(width="320px", min_width="320px"))
        title = w.HTML(
            "<h2 style='margin:4px 0'>lowentropy · layer explorer</h2>"
            "<div style='color:#555'>Prune and quantize one layer (or retrain the whole "
            "network) and see how the entropy of its weights turns into bytes and operations "
            "in dense, CSR, the paper's CER and CSER (Wiedemann et al., arXiv 1805.10692), "
            "the codebook form (palette), Huffman codes and EFR.</div>")
        g = self.messages.guard
        self.network_picker.observe(g(self._on_network), "value")
        self.path_button.on_click(g(self._on_path))
        self.upload.observe(g(self._on_upload), "value")
        self.layer_picker.observe(g(self._on_layer), "value")
        c.on_change(g(self._on_setting))
        acc.on_change(g(self._on_setting))
        self.measure_box.observe(g(self._on_batch), "value")

        start = network if network is not None else (choices[0] if choices else None)
        if isinstance(start, le.Network):
            g(self.set_network)(start)
        elif start is not None:
            if start in choices:
                self.network_picker.value = start  # fires _on_network
                if self.network is None:
                    g(self._load_named)(start)
            else:
                g(self._load_named)(start)

        self._timed_first = False
        g(self._first_timing)()
        self.fig = figure_widget(self.fig)
        main = w.VBox([self.cards, self.messages.widget, self.notes, self.fig],
                      layout=main_layout())
        self.widget = dashboard_page("layer-explorer", title, controls, main)
        self._ready = True
        if not self._timed_first:
            g(self._start_timing)()

    def _first_timing(self) -> None:
        """Time a small first layer before the page shows (a background result could
        arrive before the page connects and be lost); big layers are timed afterwards."""
        if self.measure_box.value and self.analysis is not None and (
                self.analysis.stats.size <= 4_000_000):
            if self._bandwidth is None:
                self._bandwidth = read_bandwidth(64 * 2**20, rounds=3)
            self._draw_timing(time_within_limits(
                self.analysis.matrix, self.analysis.stats,
                batch=int(self.batch_picker.value), budget=0.25))
            self._timed_first = True

    # --- figure --------------------------------------------------------------------------
    def _build_figure(self) -> go.Figure:
        fig = make_subplots(rows=3, cols=2, subplot_titles=list(_PANELS.values()),
                            vertical_spacing=0.09, horizontal_spacing=0.1)
        t: dict[str, int] = {}
        self._t = t
        # one filled step path, not a bar per bin: plotly.js styles and redraws every bar
        # on each update of the figure
        add_trace(fig, t, "histogram", go.Scatter(
            name="original weights", x=[], y=[], mode="lines", fill="tozeroy",
            line=dict(shape="hvh", width=0, color="#bbbbbb"), fillcolor="#cccccc",
            hovertemplate="w ≈ %{x:.4g}: %{y:.3s} weights<extra></extra>"), row=1, col=1)
        add_trace(fig, t, "shared values", go.Scatter(
            name="shared values", x=[], y=[], mode="lines+markers",
            line=dict(color="#0072b2", width=2), marker=dict(size=5, color="#0072b2"),
            hovertemplate="ω = %{x:.4g}: %{y:.3s} weights<extra></extra>"), row=1, col=1)
        for name, color in ARRAY_COLORS.items():
            add_trace(fig, t, f"array {name}", go.Bar(
                name=name, x=[], y=[], marker_color=color, legendgroup="arrays",
                hovertemplate=f"{name}: %{{y:.3s}}B<extra>%{{x}}</extra>"), row=1, col=2)
        add_trace(fig, t, "entropy floor", go.Scatter(
            name="entropy floor", x=[], y=[], mode="lines",
            line=dict(color=format_color("entropy floor"), dash="dash", width=2),
            hovertemplate="entropy floor %{y:.3s}B<extra></extra>"), row=1, col=2)
        add_trace(fig, t, "adds", go.Bar(
            name="adds", x=[], y=[], marker_color=_OPERATION_COLORS["adds"], legendgroup="ops",
            hovertemplate="%{y:.3s} adds<extra>%{x}</extra>"), row=2, col=1)
        add_trace(fig, t, "mults", go.Bar(
            name="mults", x=[], y=[], marker_color=_OPERATION_COLORS["mults"],
            legendgroup="ops",
            hovertemplate="%{y:.3s} mults<extra>%{x}</extra>"), row=2, col=1)
        add_trace(fig, t, "energy", go.Bar(
            name="energy", x=[], y=[], marker_color=[], showlegend=False,
            hovertemplate="%{y:.4s} pJ<extra>%{x}</extra>"), row=2, col=2)
        add_trace(fig, t, "measured", go.Bar(
            name="measured", x=[], y=[], marker_color=[], showlegend=False, text=[],
            textposition="outside", hovertemplate="%{y:.3f} ms<extra>%{x}</extra>"),
            row=3, col=1)
        add_trace(fig, t, "bandwidth limit", go.Scatter(
            name="bandwidth limit", x=[], y=[], mode="markers",
            marker=dict(symbol="line-ew-open", size=34, color="#000000", line=dict(width=3)),
            hovertemplate="limit %{y:.3f} ms<extra>%{x}</extra>"), row=3, col=1)
        add_trace(fig, t, "matrix", go.Heatmap(
            name="matrix", z=[[0]], colorscale="RdBu", zmid=0, showscale=True,
            colorbar=dict(len=0.28, y=0.13, thickness=12),
            hovertemplate="row %{y}, col %{x}: %{z:.4g}<extra></extra>"), row=3, col=2)
        fig.update_layout(
            height=1000, autosize=True, barmode="stack", template="plotly_white",
            margin=dict(l=60, r=20, t=50, b=40), font=dict(size=12),
            legend=dict(orientation="h", y=-0.1, x=0),
            uirevision="keep",
        )
        # Fixed margins: with automargin (the template's default) plotly.js measures every
        # tick label and lays the six panels out twice, a sixth of the first draw's time.
        fig.update_xaxes(automargin=False)
        fig.update_yaxes(automargin=False)
        fig.update_yaxes(type="log", title_text="weights", row=1, col=1)
        fig.update_xaxes(title_text="weight value", row=1, col=1)
        fig.update_yaxes(title_text="bytes", ticksuffix="B", tickformat="~s", row=1, col=2)
        fig.update_yaxes(title_text="operations", tickformat="~s", row=2, col=1)
        fig.update_yaxes(title_text="pJ", tickformat="~s", row=2, col=2)
        fig.update_yaxes(title_text="ms", row=3, col=1)
        fig.update_yaxes(autorange="reversed", title_text="row", row=3, col=2)
        fig.update_xaxes(title_text="column", row=3, col=2)
        return fig

    # --- loading -------------------------------------------------------------------------
    def _load_named(self, name: str) -> None:
        self.messages.info(f"loading {name} …")
        self.set_network(le.load_network(name))

    def set_network(self, network: le.Network) -> None:
        """Show a network: fill the layer list and analyse its first layer."""
        if not len(network):
            raise ValueError(f"{network.name!r} has no weight layers")
        self.network = network
        self.messages.clear()
        self.compression_controls.allow_training(retraining.can_retrain(network))
        labels = [(f"{layer.name}  {'×'.join(map(str, layer.matrix.shape))}"
                   f"{'  (synthetic)' if layer.synthetic else ''}", layer.name)
                  for layer in network.layers]
        names = [name for _, name in labels]
        keep = self.layer_picker.value if self.layer_picker.value in names else names[0]
        with self.layer_picker.hold_trait_notifications():
            self.layer_picker.options = labels
        if self.layer_picker.value != keep:
            self.layer_picker.value = keep  # fires _on_layer
        else:
            self._on_layer()

    def _on_network(self, change=None) -> None:
        if self.network_picker.value:
            self._load_named(self.network_picker.value)

    def _on_path(self, _button=None) -> None:
        text = self.path_text.value.strip()
        if text in _network_choices():  # an embedded network's name, not a file
            self._load_named(text)
            return
        self.set_network(le.load_network(checked_path(text)))

    def _on_upload(self, change=None) -> None:
        self.load_upload(self.upload.value)

    def load_upload(self, files) -> None:
        """Load the first uploaded file (``FileUpload.value`` items), within the size limit."""
        if not files:
            return
        item = files[0]
        size = int(item["size"])
        if size > MAX_UPLOAD_BYTES:
            raise ValueError(f"{item['name']} is {fmt_bytes(size)}; the upload limit is "
                             f"{fmt_bytes(MAX_UPLOAD_BYTES)} (load large files by path)")
        if item.get("content") is None:
            raise ValueError(f"{item['name']} did not arrive; upload it again")
        suffix = Path(item["name"]).suffix
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(bytes(item["content"]))
            network = le.load_network(path)
            # the loaders may map the file: keep the arrays once the file is gone
            network = le.Network(item["name"], [
                layer.with_weight(np.array(layer.weight)) for layer in network.layers
            ], source=f"upload:{item['name']}", description=network.description)
        self.set_network(network)

    # --- reacting ------------------------------------------------------------------------
    @property
    def layer(self) -> le.Layer | None:
        if self.network is None or self.layer_picker.value is None:
            return None
        return self.network[self.layer_picker.value]

    def _on_layer(self, change=None) -> None:
        layer = self.layer
        if layer is None:
            return
        W = np.asarray(layer.matrix)
        if W.dtype not in (np.float32, np.float64):
            W = W.astype(np.float32)
        if not np.isfinite(W).all():
            raise ValueError(f"layer {layer.name!r} holds NaN or infinite weights; "
                             "the formats store finite values only")
        self._original = W
        self._layer_id += 1
        self._compressed = None
        self._hist = value_histogram(W)  # once per layer
        self.refresh()

    def _on_setting(self, what: str = "recipe") -> None:
        if what == "batch":
            self._on_batch()
        else:
            self.refresh()

    def _on_batch(self, change=None) -> None:
        if self.measure_box.value:
            self._start_timing_process()
        if self.analysis is not None:
            self._start_timing()

    def _start_timing_process(self) -> None:
        """Start the live timing's worker process (once): a refresh stops it while it runs
        (see :mod:`dashboards.timing_process`). Started by the thread that makes the page
        and handles its controls, to which the worker's life is tied."""
        if (self.timing_process is None and not self._synchronous
                and timing_process.available()
                and threading.current_thread() is threading.main_thread()):
            self.timing_process = timing_process.TimingProcess()
            weakref.finalize(self, self.timing_process.close)

    @property
    def recipe(self) -> le.Recipe:
        """How the controls compress the layer."""
        return self.compression_controls.recipe

    @property
    def accounting(self) -> Accounting:
        """How the controls price the compressed layer."""
        return self.accounting_controls.accounting

    def refresh(self) -> None:
        """Recompute for the current layer, recipe and accounting, only what changed
        (an accounting change computes no statistics), and redraw what changed. Before the
        page shows this runs at once; afterwards through a throttled, cancellable runner."""
        if self._original is None:
            return
        self.timer.cancel()  # a timing still running would compete for the cores:
        if self.timing_process is not None:  # its worker stops until the refresh is drawn
            self.timing_process.pause()
        if not self._ready:
            self._draw_result(self._compute(None))
            return
        now = time.monotonic()
        pause = not self.refresher.busy and now - self._last_refresh_start >= THROTTLE_S
        self._last_refresh_start = now
        self.refresher.start(self._compute, self._draw_result,
                             delay=0.0 if pause else THROTTLE_S)

    def _compute(self, task) -> tuple:
        """(analysis, compressed, accuracy, seconds) for the current controls: the
        statistics only when the layer or the recipe changed."""
        start = time.perf_counter()
        W, layer_id = self._original, self._layer_id
        recipe, accounting = self.recipe, self.accounting
        c = self._compressed
        fresh = c is None or c.recipe != recipe or self._cache_layer != layer_id
        if fresh:
            c = compress_and_count(W, recipe, self._retrained_layer(recipe, task))
            accuracy = self._accuracy(lambda c=c: c.matrix, recipe, task)
            if task is not None:
                task.check()
            self._compressed, self._cache_layer = c, layer_id
            self._accuracy_after = accuracy
        a = price(c, accounting)
        return a, c, self._accuracy_after, time.perf_counter() - start

    def _draw_result(self, result) -> None:
        a, compressed, accuracy, seconds = result
        start = time.perf_counter()
        self.analysis = a
        self._draw(a, compressed)
        self.last_refresh_s = seconds + time.perf_counter() - start
        self._draw_cards(a, accuracy)
        self.timing_notes = {}
        self._draw_notes()
        if self.timing_process is not None:
            self.timing_process.resume()
        self._start_timing()

    def _retrained_layer(self, recipe: le.Recipe, task) -> np.ndarray | None:
        """With a retraining recipe: the chosen layer of the network retrained as a whole,
        every layer under the recipe (cached per network and recipe; ``task`` moves the
        progress bar every epoch and stops the retraining when cancelled)."""
        if not recipe.retrain:
            return None
        if task is not None:
            self.messages.info(f"retraining {self.network.name}: {recipe.describe()} …")
        done = retraining.retrained(self.network, recipe, task)
        if task is not None:
            self.messages.clear()
        return np.asarray(done[self.layer.name].matrix).reshape(self._original.shape)

    def _accuracy(self, Wc: Callable[[], np.ndarray], recipe: le.Recipe,
                  task) -> retraining.Accuracy | None:
        """Test accuracy uncompressed and compressed (for networks that have test data):
        this layer alone compressed (``Wc()``, asked for only then), or, when retraining,
        every layer one-shot against the retrained network."""
        if self.network is None or self.layer is None:
            return None
        if recipe.retrain:
            return retraining.accuracy(self.network, recipe, task)
        name = self.layer.name
        return retraining.accuracy(self.network, recipe,
                                   one_shot=lambda: with_layer(self.network, name, Wc()))

    # --- drawing -------------------------------------------------------------------------
    def _draw(self, a: Analysis, compressed: Compressed | None = None) -> None:
        """Update the figure in one batch; only the traces whose data changed: the
        histogram once per layer, the shared values and the matrix when the recipe
        changed, the costs always."""
        names = [row.format for row in a.rows]
        with self.fig.batch_update():
            d, t = self.fig.data, self._t
            if self._drawn.get("histogram") != self._layer_id:
                d[t["histogram"]].x, d[t["histogram"]].y = self._hist
                self._drawn["histogram"] = self._layer_id
            if compressed is None or self._drawn.get("compressed") is not compressed:
                self._draw_compressed(a)
                self._drawn["compressed"] = compressed
            for array in ARRAY_COLORS:
                d[t[f"array {array}"]].update(
                    x=names, y=[a.storage[n].by_array.get(array, 0) / 8 for n in names])
            d[t["entropy floor"]].update(x=names, y=[a.floor_bits / 8] * len(names))
            d[t["adds"]].update(x=names, y=[row.adds for row in a.rows])
            d[t["mults"]].update(x=names, y=[row.mults for row in a.rows])
            d[t["energy"]].update(x=names, y=[row.energy_pj for row in a.rows],
                                  marker_color=[format_color(n) for n in names])
            d[t["measured"]].update(x=[], y=[], text=[])
            d[t["bandwidth limit"]].update(x=[], y=[])
            _title(self.fig, "time").text = _PANELS["time"] + (
                " (measuring…)" if self.measure_box.value else " (off)")

    def _draw_compressed(self, a: Analysis) -> None:
        """The shared values and the matrix (inside the batch of :meth:`_draw`): stems
        separated by ``None``, the corner of the matrix with its ω₀ cells blank."""
        s = a.stats
        d, t = self.fig.data, self._t
        ranked = np.argsort(s.omega) if s.K else np.zeros(0, int)
        xs = np.full((ranked.size, 3), None, dtype=object)
        ys = np.full((ranked.size, 3), None, dtype=object)
        xs[:, 0] = xs[:, 1] = s.omega[ranked].astype(np.float64)
        ys[:, 0], ys[:, 1] = 1, s.counts[ranked].astype(np.float64)
        d[t["shared values"]].x = xs.reshape(-1).tolist()
        d[t["shared values"]].y = ys.reshape(-1).tolist()
        # the corner as columns (x, y, z): flat numeric arrays, which plotly sends as
        # binary buffers (a nested list of 8192 floats took 15-20 ms to check and encode
        # on every move); NaN, a gap, for the cells holding ω₀
        corner = a.corner()
        image = corner.astype(np.float64 if corner.dtype == np.float64 else np.float32)
        if s.K:
            image[corner == s.omega[0]] = np.nan
        heat = d[t["matrix"]]
        heat.z = image.reshape(-1)
        if self._drawn.get("matrix shape") != image.shape:  # the cells' rows and columns
            rows, cols = image.shape
            heat.x = np.tile(np.arange(cols, dtype=np.int32), rows)
            heat.y = np.repeat(np.arange(rows, dtype=np.int32), cols)
            self._drawn["matrix shape"] = image.shape

    def _draw_cards(self, a: Analysis, accuracy) -> None:
        s = a.stats
        best = max((r for r in a.rows if r.format != "dense"), key=lambda r: r.storage_gain,
                   default=None)
        cards = [
            card("distinct values K", f"{s.K:,}", "shared values incl. ω₀"),
            card("entropy H", f"{s.H:.3f} bits", "per weight"),
            card("p₀ (share of ω₀)", f"{s.p0:.1%}", f"ω₀ = {s.omega[0]:.3g}" if s.K else ""),
            card("entries N", f"{s.N:,}", f"of {s.size:,} weights"),
            card("entropy floor", fmt_bytes(a.floor_bits / 8),
                 f"dense {fmt_bytes(s.size * a.accounting.value_bits / 8)}"),
        ]
        if best is not None:
            cards.append(card("smallest format", best.format.upper(),
                              f"×{best.storage_gain:.1f} smaller than dense"))
        if a.recipe.retrain:  # fine-tuning moved the weights too, not only the rounding
            cards.append(card("change by retraining", f"{a.error['relative']:.2%}",
                              "‖W−Wr‖ / ‖W‖, W the original"))
        else:
            cards.append(card("quantization error", f"{a.error['relative']:.2%}",
                              "‖W−Wq‖ / ‖W‖"))
        if accuracy is not None:
            cards.append(accuracy_card(accuracy, "every layer" if a.recipe.retrain
                                       else "this layer compressed"))
        cards.append(card("refresh", f"{self.last_refresh_s * 1e3:.0f} ms",
                          a.recipe.describe()))
        self.cards.value = "".join(cards)

    def _draw_notes(self) -> None:
        """Notes under the cards: shared values, and formats left out of the timing."""
        parts = []
        a = self.analysis
        note = shared_values_note(a.stats, a.rows) if a is not None else ""
        if note:
            parts.append(note)
        parts += [f"{name.upper()} {text}" for name, text in self.timing_notes.items()]
        self.notes.value = "".join(
            f'<div class="lowentropy-note" style="color:#055160;background:#e7f5fb;'
            f'padding:4px 10px;margin:2px 0;border-radius:4px">{html.escape(p)}</div>'
            for p in parts)

    # --- measured time -------------------------------------------------------------------
    def _start_timing(self) -> None:
        if not self._ready or not self.measure_box.value or self.analysis is None:
            return
        a = self.analysis
        batch = int(self.batch_picker.value)

        def job(task):
            if self._bandwidth is None:
                self._bandwidth = read_bandwidth(64 * 2**20, rounds=3)
            task.check()
            self.timing_jobs.append(batch)
            worker = self.timing_process
            if worker is not None and worker.alive:
                return worker.run(a.codes_or_matrix(), batch=batch, budget=0.4, task=task)
            # the dense matrix is written from the codes here, once the controls rested
            return time_within_limits(a.matrix, a.stats, batch=batch, budget=0.4,
                                      progress=task.progress, check=task.check)

        self.timer.start(job, self._draw_timing, delay=TIMING_DELAY_S)

    def _draw_timing(self, timed) -> None:
        result, self.timing_notes = timed
        self.timings = result
        self._draw_notes()
        if result is None:
            return
        rows = result.rows(self._bandwidth)
        names = [r["name"] for r in rows]
        ms = [r["median_s"] * 1e3 for r in rows]
        limit = [r["bytes_read"] / self._bandwidth * 1e3 for r in rows]
        with self.fig.batch_update():
            d, t = self.fig.data, self._t
            d[t["measured"]].update(x=names, y=ms, marker=dict(
                color=[format_color(n) for n in names]),
                text=[fmt_ratio(r["speedup_vs_dense"]) for r in rows])
            d[t["bandwidth limit"]].update(x=names, y=limit)
            _title(self.fig, "time").text = (
                f"W @ X, batch {result.batch}: median ms (× vs dense); "
                f"limit at {self._bandwidth / 1e9:.0f} GB/s")

    def describe(self) -> str:
        """One line about what is shown (for logs and tests)."""
        layer = self.layer
        if layer is None or self.analysis is None:
            return "nothing loaded"
        return f"{self.network.name}/{layer.name}: {self.analysis.recipe.describe()}"
