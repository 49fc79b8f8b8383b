"""The control panels every dashboard builds its controls from.

- :class:`AccountingControls`: index bits, value bits, energy table and batch; gives an
  :class:`~dashboards.compression.Accounting` (and the batch). All four dashboards use it
  (the format anatomy without the energy table and batch).
- :class:`CompressionControls`: pruning, quantizer, bits / clusters, optionally a retrain
  switch (and, for whole networks, one global pruning threshold or rates from a
  sensitivity analysis); gives a :class:`lowentropy.Recipe`. Used by the layer explorer
  and the network overview.

Together they produce the (recipe, accounting) pair a dashboard computes from. Each
panel calls its listeners with what changed, so that a dashboard can recompute only that.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

import lowentropy as le

from .compression import QUANTIZERS, Accounting, recipe_of

__all__ = ["AccountingControls", "CompressionControls"]

VALUE_BITS = (32, 16, 8)
BATCHES = (1, 8, 64)


def _forwarder(fn):
    """Mark a panel's own observer as guarded: it only updates the panel and calls the
    listeners given to ``on_change``, which the dashboards wrap with ``Messages.guard``."""
    fn.guarded = True
    return fn


def _layout(width: str) -> w.Layout:  # one per widget: a shared layout hides them together
    return w.Layout(width=width)


class AccountingControls:
    """Index bits, value bits, energy table and batch.

    Parameters
    ----------
    width : str
        Width of each control.
    label_width : str
        Width of the descriptions.
    table, batch : bool
        Offer the energy table / the batch (the format anatomy needs neither).
    batch_label : str
        Description of the batch control (e.g. ``"timing batch"``).

    Examples
    --------
    >>> c = AccountingControls()
    >>> seen = []
    >>> c.on_change(seen.append)
    >>> c.value_bits_picker.value = 8
    >>> c.accounting.value_bits, seen
    (8, ['accounting'])
    """

    def __init__(self, *, width: str = "300px", label_width: str = "88px", table: bool = True,
                 batch: bool = True, batch_label: str = "batch") -> None:
        style = {"description_width": label_width}
        self.policy_picker = w.Dropdown(options=list(le.POLICIES), value="minimal",
                                        description="index bits", style=style,
                                        layout=_layout(width))
        self.value_bits_picker = w.Dropdown(options=list(VALUE_BITS), value=32,
                                            description="value bits", style=style,
                                            layout=_layout(width))
        self.table_picker = w.Dropdown(options=sorted(le.PRESETS), value="horowitz45nm",
                                       description="energy", style=style,
                                       layout=_layout(width))
        self.batch_picker = w.Dropdown(options=list(BATCHES), value=1,
                                       description=batch_label, style=style,
                                       layout=_layout(width))
        shown = [self.policy_picker, self.value_bits_picker]
        shown += [self.table_picker] if table else []
        shown += [self.batch_picker] if batch else []
        self.widgets = shown
        self.widget = w.VBox(shown)
        self._listeners: list[Callable[[str], None]] = []
        for control in (self.policy_picker, self.value_bits_picker, self.table_picker):
            control.observe(_forwarder(lambda change: self._changed("accounting")), "value")
        self.batch_picker.observe(_forwarder(lambda change: self._changed("batch")), "value")

    @property
    def accounting(self) -> Accounting:
        """How the controls price a compressed matrix."""
        return Accounting(self.policy_picker.value, int(self.value_bits_picker.value),
                          self.table_picker.value)

    @property
    def batch(self) -> int:
        return int(self.batch_picker.value)

    def on_change(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(what)`` on every change: ``"accounting"`` or ``"batch"``."""
        self._listeners.append(callback)

    def _changed(self, what: str) -> None:
        for callback in self._listeners:
            callback(what)


class CompressionControls:
    """Pruning, quantizer and its bits or clusters; optionally a retrain switch, and for
    whole networks one global pruning threshold or per-layer rates from a sensitivity
    analysis (the slider then gives the share of all weights to prune).

    Parameters
    ----------
    width, label_width : str
        Width of each control and of the descriptions.
    global_prune, sensitivity, retrain : bool
        Offer the global threshold, the rates from sensitivity, the retrain switch.

    Examples
    --------
    >>> c = CompressionControls()
    >>> c.quantizer.value = "uniform"
    >>> c.bits_slider.layout.display, c.clusters_slider.layout.display
    (None, 'none')
    >>> c.recipe == le.Recipe(prune=0.9, bits=5)
    True
    >>> c = CompressionControls(global_prune=True, sensitivity=True, retrain=True)
    >>> c.global_box.value = True; c.sensitivity_box.value = True; c.retrain_box.value = True
    >>> c.global_box.value, c.from_sensitivity, c.recipe.retrain
    (False, True, True)
    """

    def __init__(self, *, width: str = "300px", label_width: str = "88px",
                 global_prune: bool = False, sensitivity: bool = False,
                 retrain: bool = False) -> None:
        style = {"description_width": label_width}
        self.prune_slider = w.FloatSlider(value=0.9, min=0, max=0.99, step=0.01,
                                          description="pruned", readout_format=".0%",
                                          continuous_update=False, style=style,
                                          layout=_layout(width))
        self.global_box = w.Checkbox(value=False, description="one global threshold",
                                     indent=False)
        self.sensitivity_box = w.Checkbox(
            value=False, description="rates from sensitivity", indent=False,
            tooltip="per-layer rates that prune this share of all weights where the "
                    "validation accuracy suffers least")
        self.retrain_box = w.Checkbox(
            value=False, description="retrain (fine-tune after pruning)", indent=False,
            tooltip="gradual pruning with fine-tuning, then fine-tuning of the shared "
                    "values (the digits networks only)")
        self.quantizer = w.ToggleButtons(options=list(QUANTIZERS), value="kmeans",
                                         description="quantizer", style=style)
        self.quantizer.style.button_width = "auto"
        self.bits_slider = w.IntSlider(value=5, min=2, max=8, description="bits",
                                       continuous_update=False, style=style,
                                       layout=_layout(width))
        self.clusters_slider = w.IntSlider(value=32, min=2, max=256, description="clusters",
                                           continuous_update=False, style=style,
                                           layout=_layout(width))
        shown = [self.prune_slider] + ([self.global_box] if global_prune else [])
        shown += [self.sensitivity_box] if sensitivity else []
        shown += [self.quantizer, self.bits_slider, self.clusters_slider]
        shown += [self.retrain_box] if retrain else []
        self.widgets = shown
        self.widget = w.VBox(shown)
        self._listeners: list[Callable[[str], None]] = []
        self._muted = False
        for control in (self.prune_slider, self.global_box, self.sensitivity_box,
                        self.quantizer, self.bits_slider, self.clusters_slider,
                        self.retrain_box):
            control.observe(self._on_value, "value")
        self._sync()

    @property
    def recipe(self) -> le.Recipe:
        """How the controls compress (with rates from sensitivity, the dashboard replaces
        the fraction by the chosen per-layer rates)."""
        return recipe_of(float(self.prune_slider.value), self.quantizer.value,
                         int(self.bits_slider.value), int(self.clusters_slider.value),
                         global_prune=bool(self.global_box.value),
                         retrain=bool(self.retrain_box.value))

    @property
    def from_sensitivity(self) -> bool:
        """Per-layer rates from a sensitivity analysis, the slider giving their total."""
        return bool(self.sensitivity_box.value)

    def allow_training(self, allowed: bool) -> None:
        """Offer retraining and rates from sensitivity only for networks whose training
        data comes with the package (switched off and greyed out otherwise). Listeners
        are not called: the dashboard calls this while it changes networks, and redraws
        for the new one itself."""
        self._muted = True
        try:
            for box in (self.retrain_box, self.sensitivity_box):
                if not allowed and box.value:
                    box.value = False
                box.disabled = not allowed
        finally:
            self._muted = False

    def on_change(self, callback: Callable[[str], None]) -> None:
        """Call ``callback("recipe")`` when the recipe changes (a slider of the quantizer
        not in use changes nothing)."""
        self._listeners.append(callback)

    def _sync(self) -> None:
        q = self.quantizer.value
        self.bits_slider.layout.display = None if q == "uniform" else "none"
        self.clusters_slider.layout.display = None if q == "kmeans" else "none"

    @_forwarder
    def _on_value(self, change) -> None:
        owner = change["owner"] if isinstance(change, dict) else None
        if owner in (self.global_box, self.sensitivity_box) and change["new"]:
            other = self.sensitivity_box if owner is self.global_box else self.global_box
            if other.value:
                other.value = False  # one way of choosing the rates; this notifies once
                return
        self._sync()
        q = self.quantizer.value
        if (owner is self.bits_slider and q != "uniform") or (
                owner is self.clusters_slider and q != "kmeans"):
            return  # the hidden slider of the other quantizer: the recipe is the same
        if self._muted:
            return
        for callback in self._listeners:
            callback("recipe")
