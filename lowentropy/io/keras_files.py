"""Keras weights: HDF5 files (``.h5``, ``.weights.h5``) and ``.keras`` archives.

Both Keras layouts are read from the datasets alone, without Keras: Keras 2 keeps
``[model_weights/]<layer>/<layer>/kernel:0`` and ``bias:0``; Keras 3 (and the
``model.weights.h5`` inside a ``.keras`` zip) keeps ``layers/<layer>/vars/0``, ``1``, ...
Optimizer state is skipped.

Keras stores a Dense kernel ``in x out`` (transposed here to ``out x in``) and a
convolution kernel ``(kh, kw, C, F)`` (transposed to ``(F, C, kh, kw)``; 1-D and 3-D
convolutions alike). An embedding table is kept as it is. Uncompressed datasets are
memory-mapped.

The HDF5 library is not hardened against hostile files: a damaged file can make it crash
or loop. The file is therefore walked in a forked child process under a time limit
(:data:`READ_TIMEOUT`) and a memory limit. The child reports which datasets are weights
and where their bytes lie in the file (the parent maps them) or decodes compressed ones
into a private temporary ``.npy`` file; it passes JSON back, never a pickle. External
links, datasets stored in external files and virtual datasets are refused; attributes
other than fixed-length strings are not read; a compressed dataset must pass the
limits of ``check_inflation``. A crash or a timeout of the child is a ValueError.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import tempfile
import time
import zipfile

import numpy as np

from ..networks.model import Layer, Network
from ._common import MAX_DIMS, check_inflation, no_layers, one_line, require
from .numpy_files import FileMap, member_data_start, open_zip, read_npy

__all__ = ["load_keras_network", "KERAS_WEIGHTS_MEMBER", "READ_TIMEOUT", "MAX_OBJECTS"]

#: The weights inside a ``.keras`` archive.
KERAS_WEIGHTS_MEMBER = "model.weights.h5"
#: Seconds the child process may take to walk and decode one file.
READ_TIMEOUT = 300.0
#: Most groups and datasets walked in one file.
MAX_OBJECTS = 200_000

_SKIP_GROUPS = ("optimizer", "optimizer_weights")
_MAX_DEPTH = 64
_MAX_NAMES = 100_000


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _layer_names(group) -> list[str]:
    """Keras 2's ``layer_names`` attribute, read only when it is a modest 1-D array of
    strings."""
    if "layer_names" not in group.attrs:
        return []
    attr = group.attrs.get_id("layer_names")
    if attr.dtype.kind not in "SUO" or len(attr.shape) > 1 \
            or math.prod(attr.shape) > _MAX_NAMES:
        return []
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n)
            for n in np.ravel(group.attrs["layer_names"])]


def _ordered_keys(group) -> list[str]:
    """Creation order when the file tracks it; else natural order (``dense_2`` before
    ``dense_10``); Keras 2's ``layer_names`` attribute first when present."""
    keys = list(group.keys())
    if not group.id.get_create_plist().get_link_creation_order():
        keys.sort(key=_natural)
    first = [n for n in _layer_names(group) if n in keys]
    return first + [k for k in keys if k not in first]


def _datasets(h5py, group, prefix: str = "", seen: set | None = None,
              depth: int = 0) -> list[tuple[str, object]]:
    """``(path, dataset)`` under ``group`` in layer order, optimizer state left out; each
    object once (hard-link cycles), external links refused, soft links skipped."""
    seen = set() if seen is None else seen
    if depth > _MAX_DEPTH:
        raise ValueError(f"groups nested deeper than {_MAX_DEPTH} levels at {prefix!r:.200}")
    out = []
    for key in _ordered_keys(group):
        path = f"{prefix}{key}"
        link = group.get(key, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            raise ValueError(f"{path!r:.200} is an external link to {link.filename!r:.200}; "
                             "refused (only the file itself is read)")
        if not isinstance(link, h5py.HardLink):
            continue
        item = group.get(key)
        if item is None or item.id in seen:
            continue
        seen.add(item.id)
        if len(seen) > MAX_OBJECTS:
            raise ValueError(f"more than {MAX_OBJECTS} groups and datasets; refused")
        if isinstance(item, h5py.Dataset):
            out.append((path, item))
        elif isinstance(item, h5py.Group) and key not in _SKIP_GROUPS:
            out.extend(_datasets(h5py, item, path + "/", seen, depth + 1))
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


def _is_float(ds) -> bool:
    try:
        return ds.dtype.kind == "f"
    except TypeError:  # an HDF5 type NumPy has no match for
        return False


# --- in the child: walk the file, describe the weights ---------------------------------

class _Describer:
    """Describes datasets for the parent: ``{"offset": ...}`` for contiguous uncompressed
    bytes at a known offset of the file on disk (checked on the first element), else
    ``{"file": i}``: the array decoded into ``<folder>/<i>.npy``."""

    def __init__(self, filemap: FileMap | None, base: int, folder: str) -> None:
        self.filemap, self.base, self.folder, self.count = filemap, base, folder, 0

    def describe(self, name: str, ds) -> dict:
        if ds.external:
            raise ValueError(f"dataset {name!r:.200} keeps its data in external files "
                             f"{[e[0] for e in ds.external]!r:.200}; refused")
        if ds.is_virtual:
            raise ValueError(f"dataset {name!r:.200} is a virtual dataset (data from other "
                             "files); refused")
        shape, dtype = tuple(int(s) for s in ds.shape), np.dtype(ds.dtype)
        if len(shape) > MAX_DIMS:
            raise ValueError(f"dataset {name!r:.200} has {len(shape)} dimensions")
        spec = {"dtype": dtype.str, "shape": list(shape)}
        nbytes = math.prod(shape) * dtype.itemsize
        if self.filemap is not None and ds.chunks is None and nbytes:
            offset = ds.id.get_offset()
            if offset is not None and self.base + offset + nbytes <= self.filemap.size:
                arr = self.filemap.array(self.base + offset, dtype, shape)
                first = (0,) * len(shape)
                if arr[first].tobytes() == np.asarray(ds[first], dtype).tobytes():
                    return {**spec, "offset": self.base + offset}
        check_inflation(f"dataset {name!r:.200} ({shape} of {dtype})", nbytes,
                        ds.id.get_storage_size())
        arr = np.ascontiguousarray(ds[()])
        if arr.dtype != dtype or arr.shape != shape:
            raise ValueError(f"dataset {name!r:.200} read as {arr.dtype} {arr.shape}")
        self.count += 1
        np.save(os.path.join(self.folder, f"{self.count}.npy"), arr, allow_pickle=False)
        return {**spec, "file": self.count}


def _describe_layers(h5py, root, describer: _Describer) -> list[dict]:
    if "model_weights" in root:
        root = root["model_weights"]
    datasets = [(p, d) for p, d in _datasets(h5py, root) if _is_float(d)]
    by_group: dict[str, list[tuple[str, object]]] = {}
    for path, ds in datasets:
        by_group.setdefault(path.rpartition("/")[0], []).append((path, ds))
    names = {p: _pretty(p) for p, _ in datasets}
    if len(set(names.values())) != len(names):
        names = {p: p for p in names}
    entries = []
    for group, members in by_group.items():
        kernels = [(p, d) for p, d in members if d.ndim >= 2]
        vectors = [(p, d) for p, d in members if d.ndim == 1]
        for path, ds in kernels:
            leaf = path.rpartition("/")[2].removesuffix(":0")
            embedding = ds.ndim == 2 and ("embedding" in leaf or "embedding" in group.lower())
            out = ds.shape[0] if embedding else ds.shape[-1]
            named = [(p, d) for p, d in vectors
                     if p.rpartition("/")[2].removesuffix(":0") == "bias"]
            if not named and len(kernels) == 1 and len(vectors) == 1:
                named = vectors[:1]  # Keras 3: vars/0 kernel, vars/1 bias
            bias = next((describer.describe(p, d) for p, d in named if d.shape == (out,)), None)
            entries.append({"name": names[path], "embedding": embedding,
                            "weight": describer.describe(path, ds), "bias": bias})
    return entries


def _child_work(h5py, path: str, member: str | None, folder: str) -> list[dict]:
    """Runs in the child process: the layer descriptions of the file."""
    if member is None:
        describer = _Describer(FileMap(path), 0, folder)
        with h5py.File(path, "r") as root:
            return _describe_layers(h5py, root, describer)
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        info = archive.getinfo(member)
        start = member_data_start(raw, info)
        describer = _Describer(FileMap(path) if start is not None else None, start or 0,
                               folder)
        with archive.open(info) as fp, h5py.File(fp, "r") as root:
            return _describe_layers(h5py, root, describer)


# --- the sandbox -------------------------------------------------------------------------

def _limit_memory() -> None:
    """Cap the child's address space at its size now plus what decoding may need."""
    try:
        import resource

        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        from . import _common

        limit = vm + 2 * _common.MAX_INFLATED_BYTES + 2**30
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        if hard == resource.RLIM_INFINITY or limit < hard:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError, StopIteration):
        pass  # not Linux: no cap, the time limit still holds


def _wait(pid: int, timeout: float) -> int | None:
    """The child's wait status, or None after killing it at the timeout."""
    deadline, pause = time.monotonic() + timeout, 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


def _run_sandboxed(h5py, path: str, member: str | None, folder: str) -> list[dict]:
    result = os.path.join(folder, "result.json")
    if not hasattr(os, "fork"):  # no sandbox on this platform: read in this process
        return _child_work(h5py, path, member, folder)
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            _limit_memory()
            try:
                payload = {"layers": _child_work(h5py, path, member, folder)}
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                payload = {"error": one_line(exc)}
            with open(result, "w") as f:
                json.dump(payload, f)
            code = 0
        finally:
            os._exit(code)
    status = _wait(pid, READ_TIMEOUT)
    if status is None:
        raise ValueError(f"{path}: not a readable Keras HDF5 file (reading it took more than "
                         f"{READ_TIMEOUT:g} s; stopped)")
    if os.WIFSIGNALED(status) or os.waitstatus_to_exitcode(status) != 0 \
            or not os.path.exists(result):
        raise ValueError(f"{path}: not a readable Keras HDF5 file (the HDF5 library failed "
                         f"on it: exit status {os.waitstatus_to_exitcode(status)})")
    with open(result) as f:
        payload = json.load(f)
    if "error" in payload:
        raise ValueError(f"{path}: not a readable Keras HDF5 file ({payload['error']})")
    return payload["layers"]


# --- in the parent: arrays from the descriptions -----------------------------------------

def _materialize(path: str, spec: dict, filemap: FileMap, folder: str) -> np.ndarray:
    dtype, shape = np.dtype(spec["dtype"]), tuple(int(s) for s in spec["shape"])
    if dtype.kind != "f" or len(shape) > MAX_DIMS:
        raise ValueError(f"{path}: unexpected dataset description {spec!r:.200}")
    if "offset" in spec:
        return filemap.array(int(spec["offset"]), dtype, shape)
    decoded = os.path.join(folder, f"{int(spec['file'])}.npy")
    with open(decoded, "rb") as fp:  # mapped; the mapping outlives the deleted file
        arr = read_npy(fp, os.path.getsize(decoded), path, filemap=FileMap(decoded))
    if arr.dtype != dtype or arr.shape != shape:
        raise ValueError(f"{path}: decoded dataset does not match its description")
    return arr


def _read_layers(h5py, path: str, member: str | None) -> list[Layer]:
    folder = tempfile.mkdtemp(prefix="lowentropy-h5-")
    try:
        entries = _run_sandboxed(h5py, path, member, folder)
        filemap = FileMap(path)
        layers = []
        for entry in entries:
            weight = _to_layer_order(_materialize(path, entry["weight"], filemap, folder),
                                     bool(entry["embedding"]))
            bias = None
            if entry["bias"] is not None:
                bias = _materialize(path, entry["bias"], filemap, folder)
            kind = "embedding" if entry["embedding"] else "fc" if weight.ndim == 2 else "conv"
            layers.append(Layer(str(entry["name"]), weight, kind, bias=bias))
        return layers
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def load_keras_network(path: str | os.PathLike, name: str) -> Network:
    """A network from a Keras HDF5 weights file or a ``.keras`` archive."""
    path = os.fspath(path)
    h5py = require("h5py", "h5py", "Keras files")
    member = None
    if zipfile.is_zipfile(path):
        with open_zip(path, ".keras archive") as archive:
            if KERAS_WEIGHTS_MEMBER not in archive.namelist():
                raise ValueError(f"{path}: not a readable .keras archive (no "
                                 f"{KERAS_WEIGHTS_MEMBER} member)")
        member = KERAS_WEIGHTS_MEMBER
    layers = _read_layers(h5py, path, member)
    if not layers:
        raise no_layers(path, "Keras")
    return Network(name, layers, source=path, description="weights read from a Keras file")
