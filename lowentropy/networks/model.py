"""Layers and networks (SPEC §7): named weight tensors, their matrix views and how often
one inference uses them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Layer", "Network", "KINDS"]

#: Layer kinds: fully connected, convolution, embedding / token-wise projection.
KINDS = ("fc", "conv", "embedding")


@dataclass(frozen=True, eq=False)
class Layer:
    """One weight tensor of a network.

    Parameters
    ----------
    name : str
        Unique within its network (e.g. ``"features.0.weight"`` or ``"fc6"``).
    weight : ndarray
        The tensor as the network stores it: ``out x in`` for a fully connected layer,
        ``(F, C, kh, kw)`` for a convolution. Real dtype; may be a read-only memory map.
    kind : {"fc", "conv", "embedding"}
    uses_per_inference : int
        Dot products of one input vector with this layer's matrix in one forward pass:
        output positions of a convolution, 1 for a fully connected layer, tokens for a
        transformer projection.
    bias : ndarray or None
        The layer's bias, when the source has one.
    synthetic : bool
        True when the weights are generated stand-ins, not trained values.

    Examples
    --------
    >>> import numpy as np
    >>> conv = Layer("conv1", np.zeros((6, 1, 5, 5), np.float32), "conv", uses_per_inference=576)
    >>> conv.matrix.shape
    (6, 25)
    """

    name: str
    weight: np.ndarray
    kind: str = "fc"
    uses_per_inference: int = 1
    bias: np.ndarray | None = None
    synthetic: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"layer {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.weight, np.ndarray) or self.weight.ndim < 2:
            raise ValueError(f"layer {self.name!r}: weight must be an array of 2 or more "
                             f"dimensions, got {getattr(self.weight, 'shape', type(self.weight))}")
        if int(self.uses_per_inference) < 1:
            raise ValueError(f"layer {self.name!r}: uses_per_inference must be >= 1, "
                             f"got {self.uses_per_inference}")

    @property
    def matrix(self) -> np.ndarray:
        """The 2-D view the formats store: ``out x (everything else)`` (a view, not a copy,
        for a C-contiguous tensor)."""
        return self.weight.reshape(self.weight.shape[0], -1)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.weight.shape)

    @property
    def size(self) -> int:
        """Number of weights."""
        return int(self.weight.size)

    @property
    def macs_per_inference(self) -> int:
        """Multiply-accumulates of a dense forward pass through this layer."""
        return self.size * int(self.uses_per_inference)

    def with_weight(self, weight: np.ndarray) -> Layer:
        """The same layer with another tensor of the same shape (e.g. pruned)."""
        weight = np.asarray(weight)
        if weight.shape != self.weight.shape:
            raise ValueError(f"layer {self.name!r}: new weight has shape {weight.shape}, "
                             f"expected {self.weight.shape}")
        return Layer(self.name, weight, self.kind, self.uses_per_inference, self.bias,
                     self.synthetic)

    def __repr__(self) -> str:
        tag = ", synthetic" if self.synthetic else ""
        return (f"Layer({self.name!r}, {self.kind}, shape={self.shape}, "
                f"uses={self.uses_per_inference}{tag})")


@dataclass(eq=False)
class Network:
    """An ordered collection of named layers.

    Parameters
    ----------
    name : str
    layers : list of Layer
        In forward order; names must be unique.
    source : str
        Where it came from: a file path or ``"embedded:<name>"``.
    description : str
        One line for people (e.g. "AlexNet layer catalogue, synthetic weights").

    Examples
    --------
    >>> import numpy as np
    >>> net = Network("tiny", [Layer("fc1", np.ones((3, 4), np.float32))])
    >>> net["fc1"].matrix.shape, len(net), net.names
    ((3, 4), 1, ['fc1'])
    """

    name: str
    layers: list[Layer] = field(default_factory=list)
    source: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        names = [layer.name for layer in self.layers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"network {self.name!r}: duplicate layer names {dup}")

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    @property
    def synthetic(self) -> bool:
        """True when any layer carries generated weights."""
        return any(layer.synthetic for layer in self.layers)

    @property
    def size(self) -> int:
        """Number of weights in all layers."""
        return sum(layer.size for layer in self.layers)

    def __getitem__(self, key: str | int) -> Layer:
        if isinstance(key, int):
            return self.layers[key]
        for layer in self.layers:
            if layer.name == key:
                return layer
        raise KeyError(f"network {self.name!r} has no layer {key!r}; layers: {self.names}")

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        return (f"Network({self.name!r}, {len(self)} layers, {self.size:,} weights"
                f"{', synthetic' if self.synthetic else ''})")
