"""``Recipe``: one compression setting for the library, reports, sweeps, the command line
and the dashboards (SPEC §10).

A recipe says how to prune (a fraction per layer, a fraction per named layer, or one
global threshold), how to quantize (uniform ``bits`` or k-means ``clusters``) and whether
to retrain as Deep Compression does. It holds no accounting options (index policy, value
bits, energy table): those belong to whoever prices the result.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from .compress.kmeans import MAX_CLUSTERS
from .compress.uniform import MAX_BITS, MIN_BITS
from .networks.model import Layer, Network

__all__ = ["Recipe", "METHODS", "parse_prune"]

#: Quantization methods of a recipe (``None``: not quantized).
METHODS = (None, "uniform", "kmeans")

PruneSpec = float | tuple[tuple[str, float], ...]


def _fraction(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a fraction in [0, 1] (a real number), got {value!r}")
    out = float(value)
    if not 0.0 <= out <= 1.0:  # also refuses NaN
        raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}")
    return out


def _pairs(prune) -> list:
    if isinstance(prune, Mapping):
        return list(prune.items())
    pairs = list(prune)
    if not all(isinstance(p, tuple | list) and len(p) == 2 for p in pairs):
        raise TypeError("prune must be a fraction in [0, 1] or a mapping layer name -> "
                        f"fraction, got {prune!r:.80}")
    return [tuple(p) for p in pairs]


def _normal_prune(prune) -> PruneSpec:
    """A fraction as a float; a mapping (or pairs) as a sorted tuple of (name, fraction)."""
    if isinstance(prune, numbers.Real) and not isinstance(prune, bool):
        return _fraction(prune, "prune")
    if isinstance(prune, str | bytes) or not isinstance(prune, Mapping | tuple | list):
        raise TypeError("prune must be a fraction in [0, 1] or a mapping layer name -> "
                        f"fraction, got {type(prune).__name__}")
    out = {}
    for name, value in _pairs(prune):
        if not isinstance(name, str) or not name:
            raise TypeError(f"prune: layer names must be non-empty str, got {name!r}")
        if name in out:
            raise ValueError(f"prune names layer {name!r} twice")
        out[name] = _fraction(value, f"prune[{name!r}]")
    return tuple(sorted(out.items()))


def _level(value, name: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer in [{low}, {high}] (or None for no "
                        f"quantization), got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return int(value)


@dataclass(frozen=True)
class Recipe:
    """How to compress a network (or one matrix): prune, quantize, optionally retrain.

    Parameters
    ----------
    prune : float or mapping of str to float
        Fraction of each layer's weights set to 0 by magnitude, in ``[0, 1]`` (as
        :func:`lowentropy.prune` takes it); or a mapping layer name -> fraction (layers
        left out are not pruned), stored as a sorted tuple of ``(name, fraction)`` pairs
        so that equal recipes hash alike.
    method : {None, "uniform", "kmeans"}
        Quantizer; ``bits`` or ``clusters`` alone imply it.
    bits : int, optional
        Uniform quantizer bits, 2..32 (``2**bits - 1`` levels, 0 among them).
    clusters : int, optional
        k-means shared values, 1..65536: at most that many besides the pruned 0.
    global_prune : bool
        One magnitude threshold over the whole network instead of one per layer (needs a
        single fraction).
    retrain : bool
        Deep Compression: gradual pruning with fine-tuning, quantization, then fine-tuning
        of the shared values (see :func:`lowentropy.networks.training.retrain`). Needs a
        network that carries its training data (the embedded digits networks).
    seed : int
        Seed of the retraining (batch order, validation split); the result is the same
        for the same seed.

    Raises
    ------
    ValueError
        Fractions outside [0, 1]; ``bits`` together with ``clusters``; a method without
        its parameter or with the other's; ``global_prune`` with a mapping; a negative
        seed.
    TypeError
        Values of the wrong type.

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> r = le.Recipe(prune=0.5, clusters=2)
    >>> r.method, r.describe()
    ('kmeans', '50% pruned, k-means 2 values')
    >>> r.apply(np.array([[0.1, -0.9, 0.8, 0.05]], dtype=np.float32))
    array([[ 0. , -0.9,  0.8,  0. ]], dtype=float32)
    >>> le.Recipe(prune={"fc2": 0.9, "fc1": 0.8}).prune
    (('fc1', 0.8), ('fc2', 0.9))
    """

    prune: PruneSpec = 0.0
    method: str | None = None
    bits: int | None = None
    clusters: int | None = None
    global_prune: bool = False
    retrain: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        prune = _normal_prune(self.prune)
        if prune == ():
            prune = 0.0
        object.__setattr__(self, "prune", prune)
        self._check_quantizer()
        for name in ("global_prune", "retrain"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        if self.global_prune and isinstance(self.prune, tuple):
            raise ValueError("global_prune takes one fraction for the whole network, not a "
                             "mapping of layer names")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise TypeError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}")
        object.__setattr__(self, "seed", int(self.seed))

    def _check_quantizer(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be 'uniform', 'kmeans' or None, got "
                             f"{self.method!r}")
        if self.bits is not None and self.clusters is not None:
            raise ValueError("give bits (uniform quantization) or clusters (k-means), not "
                             f"both; got bits={self.bits!r}, clusters={self.clusters!r}")
        bits = _level(self.bits, "bits", MIN_BITS, MAX_BITS)
        clusters = _level(self.clusters, "clusters", 1, MAX_CLUSTERS)
        method = self.method
        if method is None and (bits is not None or clusters is not None):
            method = "uniform" if bits is not None else "kmeans"
        if method == "uniform" and bits is None:
            raise ValueError("method='uniform' takes bits= (2..32)" + (
                ", not clusters=" if clusters is not None else ""))
        if method == "kmeans" and clusters is None:
            raise ValueError(f"method='kmeans' takes clusters= (1..{MAX_CLUSTERS})" + (
                ", not bits=" if bits is not None else ""))
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "clusters", clusters)

    # --- what it says ---------------------------------------------------------------------
    @property
    def per_layer(self) -> bool:
        """True when ``prune`` names layers."""
        return isinstance(self.prune, tuple)

    @property
    def quantizer(self) -> str:
        """``"none"``, ``"uniform"`` or ``"kmeans"`` (the sweep's column)."""
        return self.method or "none"

    @property
    def levels(self) -> int:
        """Bits, clusters or 0 (the sweep's column)."""
        return {"uniform": self.bits, "kmeans": self.clusters}.get(self.method) or 0

    def fraction(self, layer: str | None = None) -> float:
        """The fraction pruned of ``layer`` (0 for a layer a mapping leaves out)."""
        if not self.per_layer:
            return self.prune
        if layer is None:
            raise ValueError("this recipe prunes per named layer; give the layer name")
        return dict(self.prune).get(layer, 0.0)

    def describe(self) -> str:
        """One line for people, e.g. ``"90% pruned, k-means 32 values, retrained"``."""
        if self.per_layer:
            first = "pruned " + ", ".join(f"{n} {f:.0%}" for n, f in self.prune)
        else:
            first = f"{self.prune:.0%} pruned" + (
                " (one global threshold)" if self.global_prune else "")
        parts = [first, {"uniform": f"uniform {self.bits}-bit",
                         "kmeans": f"k-means {self.clusters} values"}.get(
                             self.method, "not quantized")]
        if self.retrain:
            parts.append(f"retrained (seed {self.seed})")
        return ", ".join(parts)

    def as_dict(self) -> dict:
        """The fields as JSON-ready values (a mapping ``prune`` as a dict)."""
        return {"prune": dict(self.prune) if self.per_layer else self.prune,
                "method": self.method, "bits": self.bits, "clusters": self.clusters,
                "global_prune": self.global_prune, "retrain": self.retrain,
                "seed": self.seed}

    def options(self) -> dict:
        """The keyword arguments of :func:`lowentropy.sweep` that give this recipe."""
        out: dict = {"prune": dict(self.prune) if self.per_layer else self.prune}
        if self.method == "uniform":
            out["bits"] = self.bits
        elif self.method == "kmeans":
            out["clusters"] = self.clusters
        if self.global_prune:
            out["global_prune"] = True
        if self.retrain:
            out.update(retrain=True, seed=self.seed)
        return out

    def cli_args(self) -> list[str]:
        """The options of ``lowentropy report`` that give this recipe."""
        prune = (",".join(f"{n}={f!r}" for n, f in self.prune) if self.per_layer
                 else repr(self.prune))
        args = ["--prune", prune]
        if self.global_prune:
            args.append("--global-prune")
        if self.method == "uniform":
            args += ["--bits", str(self.bits)]
        elif self.method == "kmeans":
            args += ["--clusters", str(self.clusters)]
        if self.retrain:
            args += ["--retrain", "--seed", str(self.seed)]
        return args

    # --- doing it -------------------------------------------------------------------------
    def quantize(self, W, *, prune: float = 0.0, return_codes: bool = False):
        """The quantization step (``W`` itself when not quantized), after pruning
        ``prune`` of ``W`` in the same pass (:func:`lowentropy.quantize`'s ``prune=``);
        ``return_codes``: the :class:`~lowentropy.Quantized` codes instead of the array."""
        from .compress import quantize

        if self.method is None:
            if return_codes:
                raise ValueError("return_codes=True needs a quantizing recipe (method "
                                 "'uniform' with bits or 'kmeans' with clusters)")
            return W
        levels = {"bits": self.bits} if self.method == "uniform" else {
            "clusters": self.clusters}
        return quantize(W, self.method, prune=prune, return_codes=return_codes, **levels)

    def apply(self, target, *, progress: Callable[[int, int], object] | None = None,
              cancelled: Callable[[], bool] | threading.Event | None = None,
              return_codes: bool = False):
        """Compress a matrix or a network.

        Parameters
        ----------
        target : array_like or Network
            A tensor: pruned by magnitude, then quantized. A network: a new ``Network``
            with every layer compressed (per layer, per named layer, or under one global
            threshold; retrained when the recipe says so).
        progress, cancelled : callable, optional
            For retraining only: ``progress(done, total)`` after each epoch;
            ``cancelled()`` (or a ``threading.Event``) checked every epoch (true:
            :class:`lowentropy.Cancelled`).
        return_codes : bool
            For a tensor and a quantizing recipe: return the
            :class:`~lowentropy.Quantized` codes (codebook, codes, error) instead of the
            matrix, from the same single pass (``.to_dense()`` is the matrix).

        Raises
        ------
        ValueError
            A per-layer ``prune`` or ``retrain=True`` given a matrix (they need a
            network); a mapping naming layers the network does not have; retraining a
            network without training data.
        """
        if isinstance(target, Network):
            layers = [new for _, new in self._compress(target, progress, cancelled)]
            return Network(target.name, layers, target.source, target.description)
        if self.per_layer or self.retrain:
            need = "a prune mapping of layer names" if self.per_layer else "retrain=True"
            raise ValueError(f"{need} needs a network: apply the recipe to a "
                             "lowentropy.Network, not to one matrix")
        if self.method is not None or return_codes:
            return self.quantize(target, prune=self.prune, return_codes=return_codes)
        from .compress import prune

        return prune(target, self.prune) if self.prune > 0 else target

    def compressed_layers(self, network: Network) -> Iterator[tuple[Layer, Layer]]:
        """``(original layer, compressed layer)`` in network order; layer by layer (one
        compressed copy at a time) unless the recipe needs the whole network (global
        threshold, retraining)."""
        return self._compress(network, None, None)

    def check_network(self, network: Network) -> None:
        """ValueError if a prune mapping names layers ``network`` lacks."""
        if not self.per_layer:
            return
        unknown = [n for n, _ in self.prune if n not in set(network.names)]
        if unknown:
            raise ValueError(f"prune names layers that network {network.name!r} does not "
                             f"have: {unknown}; its layers are: {', '.join(network.names)}")

    def _compress(self, network: Network, progress, cancelled) -> Iterator[tuple[Layer, Layer]]:
        self.check_network(network)
        if self.retrain:
            from .networks.training import retrain

            done = retrain(network, self, progress=progress, cancelled=cancelled)
            yield from zip(network.layers, done.layers, strict=True)
            return
        if self.global_prune and self.prune > 0:
            from .compress import prune_global

            pruned = prune_global([layer.weight for layer in network.layers], self.prune)
            for layer, W in zip(network.layers, pruned, strict=True):
                yield layer, layer.with_weight(self.quantize(W))
            return
        from .compress import prune

        for layer in network.layers:
            p = self.fraction(layer.name)
            if self.method is not None:  # one pass: pruned on the fly, quantized
                yield layer, layer.with_weight(self.quantize(layer.weight, prune=p))
            else:
                yield layer, layer.with_weight(prune(layer.weight, p) if p > 0
                                               else layer.weight)


def parse_prune(text: str) -> PruneSpec:
    """The command line's ``--prune``: a fraction (``0.9``) or per-layer fractions
    (``fc1=0.8,fc2=0.9``).

    Examples
    --------
    >>> parse_prune("0.9"), parse_prune("fc1=0.8, fc2=0.9")
    (0.9, (('fc1', 0.8), ('fc2', 0.9)))
    """
    text = text.strip()
    if "=" not in text:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"--prune: {text!r} is not a fraction in [0, 1] nor layer "
                             "fractions like fc1=0.8,fc2=0.9") from None
        return _fraction(value, "--prune")
    pairs = []
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            pairs.append((name.strip(), float(value)))
        except ValueError:
            raise ValueError(f"--prune: {part.strip()!r} is not NAME=FRACTION (e.g. "
                             "fc1=0.8)") from None
        if not sep or not name.strip():
            raise ValueError(f"--prune: {part.strip()!r} is not NAME=FRACTION (e.g. fc1=0.8)")
    return _normal_prune(pairs)
