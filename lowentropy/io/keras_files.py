"""Keras weights: HDF5 files (``.h5``, ``.weights.h5``) and ``.keras`` archives.

Both Keras layouts are read from the datasets alone, without Keras: Keras 2 keeps
``[model_weights/]<layer>/<layer>/kernel:0`` and ``bias:0``; Keras 3 (and the
``model.weights.h5`` inside a ``.keras`` zip) keeps ``layers/<layer>/vars/0``, ``1``, ...
Optimizer state is skipped.

Keras stores a Dense kernel ``in x out`` (transposed here to ``out x in``) and a
convolution kernel ``(kh, kw, C, F)`` (transposed to ``(F, C, kh, kw)``; 1-D and 3-D
convolutions alike). An embedding table is kept as it is. Uncompressed datasets are
memory-mapped.
"""

from __future__ import annotations

import os
import re
import zipfile

import numpy as np

from ..networks.model import Layer, Network
from ._common import no_layers, one_line, require, unreadable
from .numpy_files import FileMap, member_data_start

__all__ = ["load_keras_network", "KERAS_WEIGHTS_MEMBER"]

#: The weights inside a ``.keras`` archive.
KERAS_WEIGHTS_MEMBER = "model.weights.h5"

_SKIP_GROUPS = ("optimizer", "optimizer_weights")


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _ordered_keys(group) -> list[str]:
    """Creation order when the file tracks it; else natural order (``dense_2`` before
    ``dense_10``); Keras 2's ``layer_names`` attribute first when present."""
    keys = list(group.keys())
    if not group.id.get_create_plist().get_link_creation_order():
        keys.sort(key=_natural)
    names = group.attrs.get("layer_names")
    if names is not None:
        first = [n.decode() if isinstance(n, bytes) else str(n) for n in np.ravel(names)]
        first = [n for n in first if n in group]
        keys = first + [k for k in keys if k not in first]
    return keys


def _datasets(h5py, group, prefix: str = "") -> list[tuple[str, object]]:
    """``(path, dataset)`` under ``group`` in layer order, optimizer state left out."""
    out = []
    for key in _ordered_keys(group):
        item = group.get(key)
        path = f"{prefix}{key}"
        if isinstance(item, h5py.Dataset):
            out.append((path, item))
        elif isinstance(item, h5py.Group) and key not in _SKIP_GROUPS:
            out.extend(_datasets(h5py, item, path + "/"))
    return out


def _pretty(path: str) -> str:
    """``model_weights/dense/dense/kernel:0`` → ``dense/kernel``;
    ``layers/dense/vars/0`` → ``dense/0``."""
    parts = [p.removesuffix(":0") for p in path.split("/")]
    if parts[0] == "model_weights":
        parts = parts[1:]
    if parts and parts[0] in ("layers", "_layer_checkpoint_dependencies"):
        parts = parts[1:]
    parts = [p for p in parts if p != "vars"]
    if len(parts) >= 2 and parts[0] == parts[1]:
        parts = parts[1:]
    return "/".join(parts) or path


def _to_layer_order(arr: np.ndarray, embedding: bool) -> np.ndarray:
    if arr.ndim == 2:
        return arr if embedding else arr.T
    # (k..., C, F) -> (F, C, k...)
    return arr.transpose(arr.ndim - 1, arr.ndim - 2, *range(arr.ndim - 2))


class _Reader:
    """Reads datasets, mapping contiguous uncompressed ones when their bytes lie at a known
    offset of a file on disk (checked on the first element; else read through h5py)."""

    def __init__(self, filemap: FileMap | None, base: int) -> None:
        self.filemap, self.base = filemap, base

    def read(self, ds) -> np.ndarray:
        if self.filemap is not None and ds.chunks is None and ds.size:
            offset = ds.id.get_offset()
            if offset is not None:
                arr = self.filemap.array(self.base + offset, ds.dtype, ds.shape)
                first = (0,) * ds.ndim
                if arr[first].tobytes() == np.asarray(ds[first], ds.dtype).tobytes():
                    return arr
        arr = ds[()]
        arr.flags.writeable = False
        return arr


def _layers(h5py, root, reader: _Reader) -> list[Layer]:
    if "model_weights" in root:
        root = root["model_weights"]
    datasets = [(p, d) for p, d in _datasets(h5py, root) if d.dtype.kind == "f"]
    by_group: dict[str, list[tuple[str, object]]] = {}
    for path, ds in datasets:
        by_group.setdefault(path.rpartition("/")[0], []).append((path, ds))
    names = {p: _pretty(p) for p, _ in datasets}
    if len(set(names.values())) != len(names):
        names = {p: p for p in names}
    layers = []
    for group, members in by_group.items():
        kernels = [(p, d) for p, d in members if d.ndim >= 2]
        vectors = [(p, d) for p, d in members if d.ndim == 1]
        for path, ds in kernels:
            leaf = path.rpartition("/")[2].removesuffix(":0")
            embedding = ds.ndim == 2 and ("embedding" in leaf or "embedding" in group.lower())
            weight = _to_layer_order(reader.read(ds), embedding)
            out = weight.shape[0]
            named = [d for p, d in vectors if p.rpartition("/")[2].removesuffix(":0") == "bias"]
            if not named and len(kernels) == 1 and len(vectors) == 1:
                named = [vectors[0][1]]  # Keras 3: vars/0 kernel, vars/1 bias
            bias = next((reader.read(d) for d in named if d.shape == (out,)), None)
            kind = "embedding" if embedding else "fc" if weight.ndim == 2 else "conv"
            layers.append(Layer(names[path], weight, kind, bias=bias))
    return layers


def _read_h5(h5py, path: str, source, reader: _Reader) -> list[Layer]:
    try:
        with h5py.File(source, "r") as root:
            return _layers(h5py, root, reader)
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise unreadable(path, "Keras HDF5", exc) from None


def load_keras_network(path: str | os.PathLike, name: str) -> Network:
    """A network from a Keras HDF5 weights file or a ``.keras`` archive."""
    path = os.fspath(path)
    h5py = require("h5py", "h5py", "Keras files")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
                info = archive.getinfo(KERAS_WEIGHTS_MEMBER)
                start = member_data_start(raw, info)
                reader = _Reader(FileMap(path) if start is not None else None, start or 0)
                with archive.open(info) as member:
                    layers = _read_h5(h5py, path, member, reader)
        else:
            layers = _read_h5(h5py, path, path, reader=_Reader(FileMap(path), 0))
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{path}: not a readable .keras archive ({one_line(exc)})") from None
    if not layers:
        raise no_layers(path, "Keras")
    return Network(name, layers, source=path, description="weights read from a Keras file")
