"""Save and load formats and networks: one ``.npz`` archive, no pickle.

The archive holds a JSON member ``lowentropy.json`` (the layout version, what the object
is: format name, shape, dtype, library version, layer names, kinds and uses; and for every
array its dtype, shape and SHA-256) and one ``.npy`` member per array, uncompressed.
A network is stored with dense weights, or compressed: every layer's matrix in a format
(``save(path, network, format="cser")``, or ``"best"`` for the smallest per layer).

Loading checks everything before any kernel can see an array: the layout version, each
array's dtype, shape and checksum against the metadata, and then every invariant of the
format through its constructor, so a corrupted or tampered file is a ValueError naming
the problem, never a crash or a wrong answer. Writing goes to a temporary file that is
moved into place, so an interrupted save never leaves a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import zipfile

import numpy as np
from numpy.lib import format as npformat

from ..formats import FORMATS, Format
from ..networks.model import Layer, Network
from ._common import one_line
from .detect import META_MEMBER
from .numpy_files import ZIP_ERRORS, iter_npz, open_zip

__all__ = ["save", "load", "checksum", "FILE_VERSION"]

#: Version of the archive layout written by ``save``.
FILE_VERSION = 2
_MAX_META = 64 * 2**20
_HASH_CHUNK = 64 * 2**20


def _library_version() -> str:
    from .. import __version__

    return __version__


def checksum(arr: np.ndarray) -> str:
    """SHA-256 (hex) of an array's bytes in C order, read in chunks (a memory map is not
    copied whole)."""
    arr = np.asarray(arr)
    flat = arr.reshape(-1) if arr.flags.c_contiguous else np.ascontiguousarray(arr).reshape(-1)
    raw = flat.view(np.uint8) if flat.size else np.empty(0, np.uint8)
    digest = hashlib.sha256()
    for start in range(0, raw.size, _HASH_CHUNK):
        digest.update(memoryview(raw[start:start + _HASH_CHUNK]))
    return digest.hexdigest()


def _describe(arrays: dict[str, np.ndarray]) -> dict[str, dict]:
    return {key: {"dtype": arr.dtype.str, "shape": list(arr.shape), "sha256": checksum(arr)}
            for key, arr in arrays.items()}


def _format_meta(f: Format) -> tuple[dict, dict[str, np.ndarray]]:
    meta = {"object": "format", "format": f.name, "shape": list(f.shape),
            "dtype": f.dtype.name}
    return meta, f.arrays()


def _best_format(matrix: np.ndarray) -> str:
    from ..stats import stats

    st = stats(matrix)
    return min(FORMATS, key=lambda name: (FORMATS[name].storage_for(st).total_bits, name))


def _network_meta(net: Network, format: str | None) -> tuple[dict, dict[str, np.ndarray]]:
    members, layers = {}, []
    for i, layer in enumerate(net.layers):
        entry = {
            "name": layer.name, "kind": layer.kind,
            "uses_per_inference": int(layer.uses_per_inference),
            "synthetic": bool(layer.synthetic), "shape": list(layer.shape),
            "dtype": layer.weight.dtype.str, "bias": layer.bias is not None,
        }
        weight = layer.weight
        if weight.dtype.kind != "f":  # bfloat16 (ml_dtypes): stored as float32, exactly
            weight = weight.astype(np.float32)
            entry["dtype"] = weight.dtype.str
        if format is None:
            members[f"layer{i}.weight"] = weight
        else:
            name = _best_format(layer.matrix) if format == "best" else format
            try:
                f = FORMATS[name].from_dense(layer.matrix)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"layer {layer.name!r}: cannot store it as {name}: {exc}") \
                    from exc
            entry.update(format=name, dtype=f.dtype.str)
            members.update({f"layer{i}.{key}": arr for key, arr in f.arrays().items()})
        if layer.bias is not None:
            members[f"layer{i}.bias"] = np.asarray(layer.bias)
        layers.append(entry)
    meta = {"object": "network", "name": net.name, "source": net.source,
            "description": net.description, "layers": layers}
    return meta, members


def save(path: str | os.PathLike, obj: Format | Network, format: str | None = None) -> None:
    """Write a format or a network to ``path`` as one ``.npz`` archive (no pickle).

    The file is written under a temporary name and then moved into place, so an
    interrupted save never leaves a half-written file at ``path``. The name is used as
    given (no extension is added). Every array's dtype, shape and SHA-256 go into the
    metadata; :func:`load` checks them.

    Parameters
    ----------
    path : str or os.PathLike
    obj : Format or Network
        A :class:`~lowentropy.Dense`, :class:`~lowentropy.CSR`, :class:`~lowentropy.CER`,
        :class:`~lowentropy.CSER` (any format in ``lowentropy.FORMATS``) or a
        :class:`~lowentropy.networks.Network`.
    format : str, optional
        For a network: store every layer's matrix in this format (a name in
        ``lowentropy.FORMATS``), or ``"best"`` for the smallest format of each layer.
        By default the weights are stored as they are. Loading gives back the same
        weights either way, bit for bit. Weights that are not float32/float64 are stored
        as float32 in a format (float16 converts exactly).

    Examples
    --------
    >>> import os, tempfile, numpy as np, lowentropy as le
    >>> f = le.CSER.from_dense(np.array([[0.0, 0.5], [0.5, 0.5]], np.float32))
    >>> path = os.path.join(tempfile.mkdtemp(), "layer.npz")
    >>> save(path, f)
    >>> g = load(path)
    >>> type(g).__name__, np.array_equal(g.to_dense(), f.to_dense())
    ('CSER', True)
    >>> net = le.load_network("lenet-300-100")
    >>> small = le.Network("small", [
    ...     layer.with_weight(le.quantize(le.prune(layer.weight, 0.9), "kmeans", clusters=16))
    ...     for layer in net.layers])
    >>> save(path, small, format="best")
    >>> [layer.weight.dtype.name for layer in load(path).layers]
    ['float32', 'float32', 'float32']
    """
    if isinstance(obj, Format):
        if format is not None:
            raise TypeError("format= applies to networks; convert the matrix with "
                            "lowentropy.get_format(name).from_dense")
        meta, members = _format_meta(obj)
    elif isinstance(obj, Network):
        if format is not None and format != "best" and format not in FORMATS:
            raise ValueError(f"unknown format {format!r}; use one of {', '.join(FORMATS)} "
                             "or 'best'")
        meta, members = _network_meta(obj, format)
    else:
        raise TypeError(f"save stores a format ({', '.join(c.__name__ for c in FORMATS.values())})"
                        f" or a Network, got {type(obj).__name__}")
    meta = {"lowentropy_file": FILE_VERSION, "lowentropy_version": _library_version(), **meta,
            "arrays": _describe(members)}
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".lowentropy-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr(META_MEMBER, json.dumps(meta, indent=1))
            for key, arr in members.items():
                with zf.open(f"{key}.npy", "w", force_zip64=True) as fp:
                    npformat.write_array(fp, np.asarray(arr), allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# --- loading -----------------------------------------------------------------------------

def _read_meta(path: str) -> dict:
    with open_zip(path, "lowentropy archive") as zf:
        try:
            info = zf.getinfo(META_MEMBER)
        except KeyError:
            raise ValueError(f"{path}: not a file written by lowentropy.save (no "
                             f"{META_MEMBER} member)") from None
        if info.file_size > _MAX_META:
            raise ValueError(f"{path}: {META_MEMBER} is too large ({info.file_size} "
                             "bytes)")
        try:
            raw = zf.read(info)
        except ZIP_ERRORS as exc:
            raise ValueError(f"{path}: not a readable lowentropy archive "
                             f"({one_line(exc)})") from None
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: {META_MEMBER} is not UTF-8 JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: {META_MEMBER} must hold a JSON object")
    version = meta.get("lowentropy_file")
    if version != FILE_VERSION:
        raise ValueError(f"{path}: archive layout version {version!r} is not supported (this "
                         f"library reads version {FILE_VERSION})")
    return meta


def _field(where: str, meta: dict, key: str, kind: type):
    value = meta.get(key)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ValueError(f"{where}: metadata field {key!r} must be a {kind.__name__}, got "
                         f"{value!r:.100}")
    return value


def _expect_members(path: str, arrays: dict, expected: set[str]) -> None:
    if set(arrays) != expected:
        missing, extra = sorted(expected - set(arrays)), sorted(set(arrays) - expected)
        raise ValueError(f"{path}: arrays do not match the metadata: missing {missing}, "
                         f"unexpected {extra}")


def _verify_arrays(path: str, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Every array has the dtype, shape and SHA-256 the metadata records."""
    described = _field(path, meta, "arrays", dict)
    _expect_members(path, arrays, set(described))
    for key, arr in arrays.items():
        entry = described[key]
        where = f"{path}: array {key!r:.80}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: its metadata entry must be an object")
        dtype, shape = _field(where, entry, "dtype", str), _field(where, entry, "shape", list)
        if arr.dtype.str != dtype or list(arr.shape) != shape:
            raise ValueError(f"{where} is {arr.dtype.str} of shape {list(arr.shape)}; the "
                             f"metadata says {dtype!r:.20} of shape {shape!r:.80}")
        if checksum(arr) != _field(where, entry, "sha256", str):
            raise ValueError(f"{where}: checksum mismatch (the file is corrupt or was "
                             "changed after it was written)")


def _load_format(path: str, meta: dict, arrays: dict[str, np.ndarray]) -> Format:
    name = _field(path, meta, "format", str)
    if name not in FORMATS:
        raise ValueError(f"{path}: unknown format {name!r:.50}; known: {', '.join(FORMATS)}")
    shape = _field(path, meta, "shape", list)
    if len(shape) != 2 or not all(type(s) is int and s >= 0 for s in shape):
        raise ValueError(f"{path}: shape must be two non-negative integers, got {shape!r:.100}")
    dtype = _field(path, meta, "dtype", str)
    if dtype not in ("float32", "float64"):
        raise ValueError(f"{path}: dtype must be float32 or float64, got {dtype!r:.50}")
    return _build_format(path, name, shape, dtype, arrays)


def _build_format(where: str, name: str, shape: list, dtype: str,
                  arrays: dict[str, np.ndarray]) -> Format:
    cls = FORMATS[name]
    _expect_members(where, arrays, set(cls.array_names))
    try:
        return cls(tuple(shape), dtype, **arrays)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: the stored {name} arrays are invalid: {exc}") from exc


def _stored_weight(where: str, i: int, entry: dict, shape: list,
                   arrays: dict[str, np.ndarray]) -> np.ndarray:
    """A layer's weight: the stored tensor, or its matrix decoded from a format."""
    if "format" not in entry:
        return arrays[f"layer{i}.weight"]
    name = _field(where, entry, "format", str)
    if name not in FORMATS:
        raise ValueError(f"{where}: unknown format {name!r:.50}; known: {', '.join(FORMATS)}")
    if not shape or not all(type(s) is int and s >= 0 for s in shape):
        raise ValueError(f"{where}: shape must be non-negative integers, got {shape!r:.100}")
    dtype = np.dtype(_field(where, entry, "dtype", str)).name
    if dtype not in ("float32", "float64"):
        raise ValueError(f"{where}: a stored {name} matrix must be float32 or float64, "
                         f"got {dtype}")
    prefix = f"layer{i}."
    parts = {key[len(prefix):]: arr for key, arr in arrays.items()
             if key.startswith(prefix) and key != f"{prefix}bias"}
    matrix_shape = [shape[0], math.prod(shape[1:])]
    return _build_format(where, name, matrix_shape, dtype, parts).to_dense().reshape(shape)


def _load_layer(path: str, i: int, entry, arrays: dict[str, np.ndarray]) -> Layer:
    where = f"{path}: layer {i}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: metadata entry must be an object")
    name = _field(where, entry, "name", str)
    kind = _field(where, entry, "kind", str)
    uses = _field(where, entry, "uses_per_inference", int)
    synthetic = _field(where, entry, "synthetic", bool)
    shape = _field(where, entry, "shape", list)
    try:
        weight = _stored_weight(where, i, entry, shape, arrays)
    except TypeError as exc:  # e.g. np.dtype of a bad string
        raise ValueError(f"{where}: {exc}") from None
    if weight.dtype.kind != "f" or list(weight.shape) != shape:
        raise ValueError(f"{where} ({name!r:.80}): weight is {weight.dtype} of shape "
                         f"{weight.shape}; the metadata says floating point of shape {shape}")
    bias = arrays.get(f"layer{i}.bias")
    if bias is not None and (bias.dtype.kind != "f" or bias.shape != (weight.shape[0],)):
        raise ValueError(f"{where} ({name!r:.80}): bias must be a floating vector of length "
                         f"{weight.shape[0]}, got {bias.dtype} of shape {bias.shape}")
    return Layer(name, weight, kind, uses, bias, synthetic)


def _load_network(path: str, meta: dict, arrays: dict[str, np.ndarray]) -> Network:
    entries = _field(path, meta, "layers", list)
    expected = set()
    for i, entry in enumerate(entries):
        stored = entry.get("format") if isinstance(entry, dict) else None
        if stored in FORMATS:
            expected.update(f"layer{i}.{key}" for key in FORMATS[stored].array_names)
        else:
            expected.add(f"layer{i}.weight")
        if isinstance(entry, dict) and entry.get("bias") is True:
            expected.add(f"layer{i}.bias")
    _expect_members(path, arrays, expected)
    try:
        layers = [_load_layer(path, i, e, arrays) for i, e in enumerate(entries)]
        return Network(_field(path, meta, "name", str), layers,
                       source=_field(path, meta, "source", str),
                       description=_field(path, meta, "description", str))
    except (ValueError, TypeError) as exc:
        if str(exc).startswith(path):
            raise
        raise ValueError(f"{path}: invalid network: {exc}") from exc


def load(path: str | os.PathLike) -> Format | Network:
    """Read a format or a network written by :func:`save`, checking everything.

    Arrays are read without pickle and checked against the dtype, shape and SHA-256 the
    metadata records; a format is rebuilt through its constructor (every invariant
    checked), a network through ``Layer`` and ``Network``. Network weights stored as they
    are come back as read-only memory maps of the file; weights stored in a format are
    decoded (bit for bit the saved ones).

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file is not a lowentropy archive, is corrupt or truncated, or holds
        arrays that break an invariant (the message names the file and the problem).

    Examples
    --------
    >>> import os, tempfile, numpy as np, lowentropy as le
    >>> from lowentropy.networks import Layer, Network
    >>> net = Network("tiny", [Layer("fc1", np.eye(3, dtype=np.float32))])
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.npz")
    >>> save(path, net)
    >>> load(path)
    Network('tiny', 1 layers, 9 weights)
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    meta = _read_meta(path)
    kind = meta.get("object")
    if kind not in ("format", "network"):
        raise ValueError(f"{path}: metadata 'object' must be 'format' or 'network', got "
                         f"{kind!r:.50}")
    arrays = dict(iter_npz(path, skip=(META_MEMBER,)))
    _verify_arrays(path, meta, arrays)
    if kind == "format":
        return _load_format(path, meta, arrays)
    return _load_network(path, meta, arrays)
