"""What a sweep runs on: the layers' metadata and how a task opens each layer."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

from ..networks.model import Network
from ._tasks import LayerMeta

__all__ = ["SweepSource", "resolve_source"]


@dataclass
class SweepSource:
    """The layers in order, how tasks open them and what identifies the data."""

    name: str
    kind: str  # see _tasks.SOURCE_KINDS
    source: str
    layers: list[LayerMeta]
    fingerprint: object
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # kind "array" only
    network: Network | None = None  # when already in memory


def _meta(layer) -> LayerMeta:
    return LayerMeta(layer.name, layer.kind, tuple(int(s) for s in layer.shape),
                     str(layer.weight.dtype))


def _digest(network: Network) -> str:
    h = hashlib.blake2b(digest_size=16)
    for layer in network.layers:
        w = np.ascontiguousarray(layer.weight)
        h.update(f"{layer.name}|{w.dtype}|{w.shape}|".encode())
        h.update(memoryview(w.reshape(-1).view(np.uint8)))
    return h.hexdigest()


def _from_network(network: Network, identify: bool) -> SweepSource:
    from ..io.sharded import mapped_origin

    origins = [mapped_origin(layer.weight) for layer in network.layers]
    paths = {o[0] if o else None for o in origins}
    if len(paths) == 1 and None not in paths:
        path = paths.pop()
        if all(o == (path, layer.name) for o, layer in zip(origins, network.layers,
                                                            strict=True)):
            from ..io.sharded import open_checkpoint

            return SweepSource(network.name, "checkpoint", path,
                               [_meta(layer) for layer in network.layers],
                               open_checkpoint(path).fingerprint, network=network)
    return SweepSource(network.name, "array", "", [_meta(layer) for layer in network.layers],
                       _digest(network) if identify else None,
                       {layer.name: layer.weight for layer in network.layers}, network)


def _stat(path: str) -> list:
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]


def resolve_source(network, identify: bool = False) -> SweepSource:
    """A :class:`SweepSource` for a Network, an embedded name or a path (``identify``:
    compute a fingerprint of in-memory weights, for the resume log)."""
    from ..io.detect import detect_format
    from ..io.network import load_network
    from ..io.sharded import is_checkpoint, open_checkpoint
    from ..networks.catalogue import CATALOGUE, catalogue_specs
    from ..networks.registry import list_networks

    if isinstance(network, Network):
        return _from_network(network, identify)
    if isinstance(network, str) and network in list_networks():
        if network in CATALOGUE:
            layers = [LayerMeta(s.name, s.kind, tuple(s.shape), "float32")
                      for s in catalogue_specs(network)]
            return SweepSource(network, "registry", network, layers, network)
        net = load_network(network)
        return SweepSource(network, "registry", network, [_meta(la) for la in net.layers],
                           network, network=net)
    if not isinstance(network, str | os.PathLike):
        raise TypeError(f"network must be a Network, a name from list_networks() or a path, "
                        f"got {type(network).__name__}")
    path = os.fspath(network)
    if not os.path.exists(path):
        load_network(path)  # raises the project's FileNotFoundError
    single = os.path.isfile(path) and not path.endswith(".index.json")
    kind = detect_format(path) if single else "checkpoint"
    if kind in ("safetensors", "checkpoint") and (single or is_checkpoint(path)):
        from ..io._common import kind_of

        ckpt = open_checkpoint(path)
        layers = [LayerMeta(n, kind_of(n, len(ckpt.tensors[n].shape)), ckpt.tensors[n].shape,
                            ckpt.tensors[n].source_dtype) for n in ckpt.layer_names()]
        if not layers:
            raise ValueError(f"{path}: holds no floating-point tensor of 2 or more "
                             "dimensions (no weight layer to sweep)")
        return SweepSource(ckpt.name, "checkpoint", ckpt.path, layers, ckpt.fingerprint)
    net = load_network(path)
    if kind in ("npy", "npz"):
        return SweepSource(net.name, "file", os.path.abspath(path),
                           [_meta(la) for la in net.layers], _stat(path))
    source = _from_network(net, identify)
    source.fingerprint = _stat(path)
    return source
