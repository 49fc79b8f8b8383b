"""Per-layer pruning sensitivity (the analysis Distiller and Deep Compression use to choose
per-layer rates), and rates chosen from it for an allowed drop of a metric.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable

import numpy as np

from .compress import prune
from .networks.model import Network
from .sweep._table import Table

__all__ = ["SensitivityTable", "sensitivity", "choose_rates", "validation_accuracy",
           "DEFAULT_SPARSITIES"]

#: The sparsities of :func:`sensitivity` by default.
DEFAULT_SPARSITIES = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)


class SensitivityTable(Table):
    """The rows of :func:`sensitivity`: one per layer x sparsity, with the metric of the
    network where only that layer is pruned (``weights``: the layer's size).

    Examples
    --------
    >>> t = SensitivityTable([{"network": "n", "layer": "fc", "weights": 4,
    ...                        "sparsity": 0.5, "metric": 0.75}])
    >>> t.column("metric"), SensitivityTable.read_text(t.to_csv()) == t
    (array([0.75]), True)
    """

    COLUMNS = ("network", "layer", "weights", "sparsity", "metric")
    STR = ("network", "layer")
    INT = ("weights",)
    FLOAT = ("sparsity", "metric")
    KIND = "sensitivity table"

    def __repr__(self) -> str:
        layers = len({r["layer"] for r in self.rows})
        return f"SensitivityTable({len(self)} rows, {layers} layers)"

    def curve(self, layer: str) -> tuple[np.ndarray, np.ndarray]:
        """``(sparsities, metrics)`` of one layer, in the order measured."""
        rows = self.where(layer=layer)
        if not len(rows):
            raise ValueError(f"no rows for layer {layer!r}; layers: "
                             f"{', '.join(dict.fromkeys(r['layer'] for r in self.rows))}")
        return rows.column("sparsity"), rows.column("metric")


def _sparsities(sparsities: Iterable) -> list[float]:
    from .recipe import _fraction

    if isinstance(sparsities, numbers.Real):
        sparsities = [sparsities]
    out = [_fraction(s, "sparsities") for s in sparsities]
    if not out:
        raise ValueError("sparsities is empty; give fractions in [0, 1]")
    return out


def _metric(value, evaluate) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"evaluate must return a real number, {getattr(evaluate, '__name__', 'it')}"
                        f" returned {type(value).__name__}")
    return float(value)


def sensitivity(network: Network, sparsities: Iterable[float] = DEFAULT_SPARSITIES,
                evaluate: Callable[[Network], float] | None = None, *,
                layers: Iterable[str] | None = None,
                progress: Callable[[int, int], object] | None = None) -> SensitivityTable:
    """How a metric responds to pruning each layer alone.

    For every layer and every sparsity, the layer is magnitude-pruned to that sparsity
    (:func:`lowentropy.prune`), the other layers are left as they are, and ``evaluate``
    is called once on that network.

    Parameters
    ----------
    network : Network
    sparsities : iterable of float
        Fractions in [0, 1].
    evaluate : callable, optional
        ``evaluate(network) -> float``, any metric of a :class:`Network` (a user's own
        model and data too). Default :func:`lowentropy.accuracy` (test accuracy of the
        embedded digits networks).
    layers : iterable of str, optional
        Only these layers (default every layer).
    progress : callable, optional
        ``progress(done, total)`` after each evaluation (e.g. a progress bar; raising in
        it stops the analysis).

    Returns
    -------
    SensitivityTable
        One row per layer x sparsity, in layer then sparsity order.

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> net = le.Network("n", [le.Layer("a", np.arange(1.0, 5.0).reshape(2, 2)),
    ...                        le.Layer("b", np.ones((2, 2)))])
    >>> total = lambda n: float(sum(layer.weight.sum() for layer in n))
    >>> t = le.sensitivity(net, [0.0, 0.5], evaluate=total)
    >>> [(r["layer"], r["sparsity"], r["metric"]) for r in t]
    [('a', 0.0, 14.0), ('a', 0.5, 11.0), ('b', 0.0, 14.0), ('b', 0.5, 12.0)]
    """
    if not isinstance(network, Network):
        raise TypeError(f"network must be a lowentropy.Network, got {type(network).__name__}")
    if evaluate is None:
        from .networks.embedded import accuracy as evaluate
    if not callable(evaluate):
        raise TypeError(f"evaluate must be a callable taking a Network, got "
                        f"{type(evaluate).__name__}")
    fractions = _sparsities(sparsities)
    names = network.names if layers is None else list(layers)
    unknown = [n for n in names if n not in network.names]
    if unknown:
        raise ValueError(f"layers names layers that network {network.name!r} does not have: "
                         f"{unknown}; its layers are: {', '.join(network.names)}")
    rows = []
    total = len(names) * len(fractions)
    for name in names:
        i = network.names.index(name)
        layer = network.layers[i]
        for s in fractions:
            changed = list(network.layers)
            changed[i] = layer.with_weight(prune(layer.weight, s) if s > 0 else layer.weight)
            value = evaluate(Network(network.name, changed, network.source,
                                     network.description))
            rows.append({"network": network.name, "layer": name, "weights": layer.size,
                         "sparsity": s, "metric": _metric(value, evaluate)})
            if progress is not None:
                progress(len(rows), total)
    return SensitivityTable(rows)


def validation_accuracy(network: Network) -> float:
    """Accuracy of a digits network on the validation images held out of the training
    split (:func:`lowentropy.networks.training.training_split`), never the test split."""
    from .networks.embedded import predict
    from .networks.training import training_split

    images, labels = training_split("validation")
    return float(np.mean(predict(network, images) == labels))


def _rates_within(table: SensitivityTable, names: list[str], baseline: float,
                  drop: float) -> dict[str, float]:
    rates = {}
    for name in names:
        xs, ys = table.curve(name)
        ok = [x for x, y in zip(xs, ys, strict=True) if y >= baseline - drop]
        rates[name] = float(max(ok, default=0.0))
    return rates


def choose_rates(network: Network, max_drop: float | None = 0.01,
                 sparsities: Iterable[float] = DEFAULT_SPARSITIES,
                 evaluate: Callable[[Network], float] | None = None, *,
                 target: float | None = None,
                 table: SensitivityTable | None = None) -> dict[str, float]:
    """Per-layer pruning rates from a sensitivity analysis: for each layer, the largest
    sparsity whose metric stays within ``max_drop`` of the unpruned network's.

    With ``target`` (a share of all weights, in [0, 1]) instead, the smallest allowed
    drop whose rates prune at least that share of the network (the most the sparsities
    allow when none does).

    The metric is by default :func:`validation_accuracy`: the rates are chosen on images
    held out of the training split, never on the test split. The result can be given to
    :class:`lowentropy.Recipe` as ``prune``. ``evaluate`` is called once on the network
    as it is, then once per layer x sparsity, unless ``table`` is given: the
    :func:`sensitivity` of this network under the same ``evaluate``, already computed
    (e.g. to choose for several targets, or to show it).

    Examples
    --------
    >>> import lowentropy as le
    >>> net = le.load_network("lenet-300-100")
    >>> rates = le.choose_rates(net, max_drop=0.02)
    >>> sorted(rates) == ["fc1", "fc2", "fc3"] and all(0 <= r <= 1 for r in rates.values())
    True
    >>> rates = le.choose_rates(net, target=0.9)
    >>> sum(rates[layer.name] * layer.size for layer in net) >= 0.9 * net.size
    True
    """
    from .recipe import _fraction

    if target is not None:
        target = _fraction(target, "target")
    elif isinstance(max_drop, bool) or not isinstance(max_drop, numbers.Real) \
            or not max_drop >= 0:
        raise ValueError(f"max_drop must be a non-negative number, got {max_drop!r}")
    evaluate = validation_accuracy if evaluate is None else evaluate
    baseline = _metric(evaluate(network), evaluate)
    if table is None:
        table = sensitivity(network, sparsities, evaluate)
    names = network.names
    missing = [n for n in names if n not in set(table.column("layer"))]
    if missing:
        raise ValueError(f"the sensitivity table has no rows for layers {missing} of "
                         f"network {network.name!r}")
    if target is None:
        return _rates_within(table, names, baseline, float(max_drop))
    sizes = {layer.name: layer.size for layer in network}
    rates = {}
    for drop in sorted({max(baseline - y, 0.0) for y in table.column("metric")}):
        rates = _rates_within(table, names, baseline, drop)
        if sum(rates[n] * sizes[n] for n in names) >= target * network.size:
            break
    return rates
