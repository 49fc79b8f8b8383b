"""Whole-network work for the dashboards: retraining, sensitivity, accuracy; cached.

Retraining (``Recipe(retrain=True)``, SPEC §10) takes seconds of CPU (lenet-300-100 about
5 s, lenet-5 about 15 s), and so does a sensitivity analysis. The dashboards run them in a
:class:`~dashboards.ui.Runner` job and pass its task: ``task.progress`` moves the bar after
every epoch or evaluation and raises ``Cancelled`` there once a newer change has replaced
the job, so a stale run stops within an epoch instead of keeping both cores busy.

Results are kept per network and recipe (retraining is deterministic for a recipe, its
seed included): going back to a setting, or showing another layer of the same retrained
network, costs nothing. The cache holds the last :data:`CACHE_SIZE` results of each kind.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import lowentropy as le
from lowentropy.networks.training import has_training_data
from lowentropy.sensitivity import DEFAULT_SPARSITIES, validation_accuracy

from .model import accuracy_or_none

__all__ = ["CACHE_SIZE", "Accuracy", "accuracy", "can_retrain", "clear", "compressed_network",
           "rates_from_sensitivity", "retrained", "sensitivity"]

CACHE_SIZE = 8

_lock = threading.Lock()
_caches: dict[str, OrderedDict] = {}


def _cached(kind: str, network: le.Network, key: Hashable, make: Callable[[], Any]) -> Any:
    """``make()`` once per (network object, key) among the last ``CACHE_SIZE`` of ``kind``."""
    cache = _caches.setdefault(kind, OrderedDict())
    full = (id(network), key)
    with _lock:
        hit = cache.get(full)
        if hit is not None and hit[0] is network:  # the same object, not a reused id
            cache.move_to_end(full)
            return hit[1]
    value = make()
    with _lock:
        cache[full] = (network, value)
        cache.move_to_end(full)
        while len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
    return value


def clear() -> None:
    """Forget every cached result."""
    with _lock:
        _caches.clear()


def can_retrain(network: le.Network | None) -> bool:
    """Whether the network's training data comes with the package (the digits networks)."""
    return network is not None and has_training_data(network)


def _progress(task) -> Callable[[int, int], object] | None:
    return None if task is None else task.progress


def retrained(network: le.Network, recipe: le.Recipe, task=None) -> le.Network:
    """``recipe.apply(network)`` with ``retrain=True`` (cached), reporting to ``task``."""
    recipe = dataclasses.replace(recipe, retrain=True)
    return _cached("retrained", network, recipe, lambda: recipe.apply(
        network, progress=_progress(task),
        cancelled=None if task is None else (lambda: task.cancelled)))


def compressed_network(network: le.Network, recipe: le.Recipe, task=None) -> le.Network:
    """The network compressed as ``recipe`` says: retrained (cached) or one-shot."""
    if recipe.retrain:
        return retrained(network, recipe, task)
    return recipe.apply(network)


@dataclasses.dataclass(frozen=True)
class Accuracy:
    """Test accuracy of a network: uncompressed, compressed one-shot, and retrained (when
    the recipe retrains)."""

    uncompressed: float
    one_shot: float
    retrained: float | None = None

    @property
    def compressed(self) -> float:
        """What the recipe gives: retrained when it retrains, else one-shot."""
        return self.one_shot if self.retrained is None else self.retrained


def accuracy(network: le.Network, recipe: le.Recipe, task=None, *,
             one_shot: le.Network | Callable[[], le.Network] | None = None
             ) -> Accuracy | None:
    """Test accuracy of ``network`` uncompressed, one-shot and (when ``recipe.retrain``)
    retrained; ``None`` for a network without test data. Cached per network and recipe.
    ``one_shot``: the network already compressed one-shot (e.g. only one of its layers,
    as the layer explorer does without retraining), or a function making it (called only
    for a network with test data)."""
    before = _cached("uncompressed", network, None, lambda: accuracy_or_none(network))
    if before is None:
        return None
    plain = dataclasses.replace(recipe, retrain=False)
    if one_shot is None:
        first = _cached("one-shot", network, plain,
                        lambda: le.accuracy(plain.apply(network)))
    else:
        first = le.accuracy(one_shot() if callable(one_shot) else one_shot)
    if not recipe.retrain:
        return Accuracy(before, first)
    again = _cached("retrained accuracy", network, recipe,
                    lambda: le.accuracy(retrained(network, recipe, task)))
    return Accuracy(before, first, again)


def sensitivity(network: le.Network, task=None) -> le.SensitivityTable:
    """Validation accuracy with each layer alone pruned to each of
    ``lowentropy.sensitivity.DEFAULT_SPARSITIES`` (cached per network): what
    :func:`rates_from_sensitivity` chooses from."""
    return _cached("sensitivity", network, None, lambda: le.sensitivity(
        network, DEFAULT_SPARSITIES, validation_accuracy, progress=_progress(task)))


def rates_from_sensitivity(network: le.Network, target: float, task=None) -> dict[str, float]:
    """Per-layer pruning rates that prune at least ``target`` of all weights where the
    validation accuracy suffers least (:func:`lowentropy.choose_rates`)."""
    table = sensitivity(network, task)
    return _cached("rates", network, float(target), lambda: le.choose_rates(
        network, target=target, evaluate=validation_accuracy, table=table))
