"""The shared control panels: every dashboard builds its accounting controls from
AccountingControls and its compression controls from CompressionControls, and no
dashboard keeps a parallel copy of them."""

from __future__ import annotations

import inspect
import re

import ipywidgets as w
import numpy as np
import pytest
from dashboards import entropy_map, format_anatomy, layer_explorer, network_overview
from dashboards.compression import Accounting
from dashboards.controls import AccountingControls, CompressionControls

import lowentropy as le

MODULES = [layer_explorer, network_overview, entropy_map, format_anatomy]
PANEL_LABELS = ("index bits", "value bits", "energy", "timing batch", "batch", "pruned",
                "quantizer", "bits", "clusters", "one global threshold",
                "rates from sensitivity", "retrain (fine-tune after pruning)")


def _network() -> le.Network:
    rng = np.random.default_rng(5)
    return le.Network("small", [le.Layer("fc", rng.standard_normal((16, 48)).astype(
        np.float32))])


@pytest.fixture(scope="module")
def dashboards():
    return {
        "layer_explorer": layer_explorer.LayerExplorer(_network(), measure=False,
                                                       synchronous=True),
        "network_overview": network_overview.NetworkOverview(_network(), synchronous=True),
        "entropy_map": entropy_map.EntropyMap(shape=(128, 512), resolution=4,
                                              synchronous=True),
        "format_anatomy": format_anatomy.FormatAnatomy(),
    }


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_no_dashboard_builds_panel_controls_itself(module):
    source = inspect.getsource(module)
    for label in PANEL_LABELS:
        assert not re.search(rf'description="{label}"', source), (module.__name__, label)
    assert "le.POLICIES" not in source and "le.PRESETS" not in source
    assert "recipe_of(" not in source  # the recipe comes from CompressionControls


def test_every_panel_control_in_a_page_belongs_to_a_shared_panel(dashboards):
    for name, dash in dashboards.items():
        panels = [dash.accounting_controls]
        assert isinstance(dash.accounting_controls, AccountingControls), name
        if name in ("layer_explorer", "network_overview"):
            assert isinstance(dash.compression_controls, CompressionControls), name
            panels.append(dash.compression_controls)
        else:
            assert not hasattr(dash, "compression_controls"), name
        owned = {id(c) for p in panels for c in p.widgets}
        shown = [c for c in _walk(dash.widget) if isinstance(c, w.DOMWidget)
                 and getattr(c, "description", None) in PANEL_LABELS]
        assert shown, name
        for control in shown:
            assert id(control) in owned, (name, control.description)


def test_the_dashboards_compute_from_the_panels_recipe_and_accounting(dashboards):
    ex = dashboards["layer_explorer"]
    ex.accounting_controls.value_bits_picker.value = 16
    ex.compression_controls.quantizer.value = "uniform"
    assert ex.analysis.accounting == Accounting("minimal", 16, "horowitz45nm")
    assert ex.analysis.recipe == ex.compression_controls.recipe == le.Recipe(prune=0.9,
                                                                               bits=5)
    ov = dashboards["network_overview"]
    ov.compression_controls.global_box.value = True
    assert ov.report.recipe == le.Recipe(prune=0.9, clusters=32, global_prune=True)
    fa = dashboards["format_anatomy"]
    fa.accounting_controls.value_bits_picker.value = 8
    assert "values: 8 bits" in fa.storage.value
    em = dashboards["entropy_map"]
    em.accounting_controls.batch_picker.value = 8
    assert em.costs.values["ops"].shape[0] == len(le.FORMATS)


def test_retrain_and_the_ways_of_choosing_rates():
    c = CompressionControls(global_prune=True, sensitivity=True, retrain=True)
    seen = []
    c.on_change(seen.append)
    c.retrain_box.value = True
    assert c.recipe == le.Recipe(prune=0.9, clusters=32, retrain=True) and seen == ["recipe"]
    c.sensitivity_box.value = True
    c.global_box.value = True  # one way of choosing the rates at a time, one notification
    assert (c.global_box.value, c.from_sensitivity, len(seen)) == (True, False, 3)
    c.sensitivity_box.value = True
    assert (c.global_box.value, c.from_sensitivity, len(seen)) == (False, True, 4)
    c.allow_training(False)  # a network without training data: off, greyed, no redraw
    assert not c.retrain_box.value and not c.from_sensitivity and len(seen) == 4
    assert c.retrain_box.disabled and c.sensitivity_box.disabled and not c.recipe.retrain
    c.allow_training(True)
    assert not c.retrain_box.disabled and not c.retrain_box.value
    plain = CompressionControls()
    assert plain.retrain_box not in plain.widgets and plain.sensitivity_box not in plain.widgets
