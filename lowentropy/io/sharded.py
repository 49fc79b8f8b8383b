"""Sharded safetensors checkpoints, opened lazily one tensor at a time.

A Hugging Face checkpoint too large for one file is a folder of safetensors shards plus
``model.safetensors.index.json``, whose ``weight_map`` names the shard holding each tensor.
:func:`open_checkpoint` validates the index and reads only the shards' headers; every
tensor is then its own read-only memory map of its byte range, so nothing is read until a
layer is used, and a layer's pages can be dropped again when it has been used
(:func:`release_pages`). BF16 and F16 tensors keep their 2-byte dtype in the map
(``ml_dtypes.bfloat16`` and ``float16``); the formats, the statistics and the compressors
convert them to float32 per layer when they use it.

A single safetensors file is opened the same way, as a checkpoint of one shard.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..networks.model import Layer, Network
from ._common import bias_for, kind_of, require
from .safetensors_files import header_entries

__all__ = ["Checkpoint", "TensorInfo", "open_checkpoint", "load_sharded_network",
           "is_checkpoint", "mapped_tensor", "mapped_origin", "release_pages", "INDEX_SUFFIX"]

INDEX_SUFFIX = ".safetensors.index.json"

#: safetensors dtypes read as weights: numpy dtype (bfloat16 needs ml_dtypes).
_FLOAT_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "bfloat16"}


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: its shard, dtype, shape and absolute byte range."""

    name: str
    shard: str  # absolute path of the shard file
    dtype: str  # safetensors dtype name, e.g. "BF16"
    shape: tuple[int, ...]
    start: int  # absolute offset of the first byte in the shard
    nbytes: int

    @property
    def source_dtype(self) -> str:
        """The numpy name of the stored dtype: float32, float16, bfloat16 or float64."""
        return {"F64": "float64", "F32": "float32", "F16": "float16",
                "BF16": "bfloat16"}[self.dtype]


class _TensorMap(mmap.mmap):
    """A read-only map of one tensor's pages, tagged with where they come from."""

    checkpoint: str
    tensor: TensorInfo
    inner: int  # offset of the tensor's first byte inside the map


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _shard_layout(path: str) -> dict[str, tuple[str, tuple[int, ...], int, int]]:
    """The validated header entries of one shard: name → (dtype, shape, abs start, end)."""
    entries, data_start = header_entries(path)
    return {name: (dtype, shape, data_start + b, e - b)
            for name, (dtype, shape, b, e) in entries.items()}


def _safe_member(folder: str, index: str, name) -> str:
    """The absolute path of shard ``name`` of ``index``, refusing names that leave the
    folder (absolute, ``..``, drive letters, backslashes)."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"{index}: invalid shard file name {name!r:.100}")
    parts = name.split("/")
    if (os.path.isabs(name) or "\\" in name or ":" in name
            or any(p in ("", ".", "..") for p in parts)):
        raise ValueError(f"{index}: shard file {name!r:.100} must be a plain relative path "
                         "inside the checkpoint folder (no '..', absolute path or drive)")
    return os.path.join(folder, *parts)


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a key appears twice")
    return out


def _read_index(index: str) -> dict[str, str]:
    """``weight_map`` of an index file: tensor name → shard file name, validated."""
    try:
        with open(index, "rb") as fp:
            raw = fp.read(64 * 1024 * 1024 + 1)
        if len(raw) > 64 * 1024 * 1024:
            raise ValueError("larger than 64 MB")
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise ValueError(f"{index}: not a valid checkpoint index (nested too deeply)") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{index}: not a valid checkpoint index ({str(exc)[:120]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("weight_map"), dict):
        raise ValueError(f"{index}: a checkpoint index must be a JSON object with a "
                         "'weight_map' object (tensor name → shard file)")
    weight_map = data["weight_map"]
    if not weight_map:
        raise ValueError(f"{index}: the weight_map is empty")
    for name, shard in weight_map.items():
        if not isinstance(shard, str):
            raise ValueError(f"{index}: weight_map[{name!r:.100}] must be a shard file name, "
                             f"got {type(shard).__name__}")
    return weight_map


@dataclass(frozen=True)
class Checkpoint:
    """The layout of a (sharded) safetensors checkpoint; no weight is read.

    Attributes
    ----------
    path : str
        The index file, or the single safetensors file.
    tensors : dict of str to TensorInfo
        Every floating tensor, in layer order (names sorted naturally: ``layers.2``
        before ``layers.10``).
    fingerprint : tuple
        Size and modification time of every file, to tell a changed checkpoint.
    """

    path: str
    tensors: dict[str, TensorInfo]
    fingerprint: tuple

    @property
    def name(self) -> str:
        base = os.path.basename(self.path)
        if base.endswith(INDEX_SUFFIX):
            stem = base[: -len(INDEX_SUFFIX)]
            return stem if stem != "model" else (
                os.path.basename(os.path.dirname(self.path)) or stem)
        return base.split(".")[0] or base

    def array(self, name: str) -> np.ndarray:
        """Tensor ``name`` as a read-only memory map of its own (2-byte floats keep
        their dtype; see :func:`mapped_tensor`)."""
        try:
            info = self.tensors[name]
        except KeyError:
            raise KeyError(f"{self.path}: no floating tensor {name!r}") from None
        return mapped_tensor(info, self.path)

    def layer_names(self) -> list[str]:
        """The tensors of 2 or more dimensions: the layers."""
        return [n for n, t in self.tensors.items() if len(t.shape) >= 2]

    def layer(self, name: str, with_bias: bool = True) -> Layer:
        """One layer, mapped (with its bias when the checkpoint has one)."""
        info = self.tensors.get(name)
        if info is None or len(info.shape) < 2:
            raise KeyError(f"{self.path}: no weight layer {name!r}")
        bias = None
        if with_bias:
            vectors = {n: t for n, t in self.tensors.items() if len(t.shape) == 1}
            found = bias_for(name, info.shape[0], vectors)  # TensorInfo has a .shape
            bias = None if found is None else self.array(found.name)
        return Layer(name, self.array(name), kind_of(name, len(info.shape)), bias=bias)

    def network(self, name: str | None = None) -> Network:
        """Every layer, memory-mapped: nothing is read until a layer is used."""
        layers = [self.layer(n) for n in self.layer_names()]
        if not layers:
            raise ValueError(f"{self.path}: the checkpoint holds no floating-point tensor "
                             "of 2 or more dimensions (no weight layer to read)")
        return Network(name or self.name, layers, source=self.path,
                       description=f"weights memory-mapped from a safetensors checkpoint "
                                   f"({len(set(t.shard for t in self.tensors.values()))} "
                                   "shard files)")


def _resolve(path: str) -> tuple[str, str | None]:
    """``(path, None)`` for a single safetensors file, ``(index, folder)`` otherwise."""
    if os.path.isdir(path):
        indexes = sorted(f for f in os.listdir(path) if f.endswith(INDEX_SUFFIX))
        if "model" + INDEX_SUFFIX in indexes:
            indexes = ["model" + INDEX_SUFFIX]
        if len(indexes) == 1:
            return os.path.join(path, indexes[0]), path
        if len(indexes) > 1:
            raise ValueError(f"{path}: holds several checkpoint indexes {indexes}; give the "
                             "path of one")
        singles = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
        if len(singles) == 1:
            return os.path.join(path, singles[0]), None
        raise ValueError(f"{path}: a folder with no '*{INDEX_SUFFIX}'"
                         + (f" for its {len(singles)} safetensors files" if singles else
                            " and no safetensors file; give the path of a weight file"))
    if path.endswith(".index.json"):
        return path, os.path.dirname(path) or "."
    return path, None


def is_checkpoint(path: str | os.PathLike) -> bool:
    """True for a folder holding a safetensors index or single file, or an index file.

    Examples
    --------
    >>> import tempfile
    >>> is_checkpoint(tempfile.mkdtemp())
    False
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        try:
            _resolve(path)
        except ValueError as exc:
            return "several" in str(exc)
        return True
    return path.endswith(".index.json") and os.path.isfile(path)


def open_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """The layout of a checkpoint: a folder, its ``*.safetensors.index.json`` or a single
    ``.safetensors`` file. Reads the index and the shard headers only.

    Every shard named by the index must be a plain relative path inside the index's folder
    (symbolic links there are followed, as in the Hugging Face cache), every tensor of the
    ``weight_map`` must be in its shard, and every shard header is validated as
    :func:`~lowentropy.io.safetensors_files.read_safetensors` does.

    Raises
    ------
    FileNotFoundError
        If the path or a shard file is missing (the message lists the missing shards).
    ValueError
        If the index is not valid JSON, names shards outside the folder, or a tensor is
        missing from its shard, or a shard header is invalid.

    Examples
    --------
    >>> import json, os, struct, tempfile, numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> def shard(file, name, W):
    ...     head = json.dumps({name: {"dtype": "F32", "shape": list(W.shape),
    ...                               "data_offsets": [0, W.nbytes]}}).encode()
    ...     with open(os.path.join(folder, file), "wb") as f:
    ...         _ = f.write(struct.pack("<Q", len(head)) + head + W.tobytes())
    >>> shard("a.safetensors", "fc1.weight", np.ones((3, 2), "<f4"))
    >>> shard("b.safetensors", "fc2.weight", np.ones((1, 3), "<f4"))
    >>> index = {"weight_map": {"fc1.weight": "a.safetensors", "fc2.weight": "b.safetensors"}}
    >>> with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
    ...     json.dump(index, f)
    >>> ckpt = open_checkpoint(folder)
    >>> [(t.name, t.shape, os.path.basename(t.shard)) for t in ckpt.tensors.values()]
    [('fc1.weight', (3, 2), 'a.safetensors'), ('fc2.weight', (1, 3), 'b.safetensors')]
    """
    return _open_cached(*_identity(os.fspath(path)))


def _identity(path: str) -> tuple[str, tuple]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path!r}: no such checkpoint folder or file")
    index, folder = _resolve(path)
    index = os.path.abspath(index)
    st = os.stat(index)
    return index, (st.st_size, st.st_mtime_ns, folder is not None)


@lru_cache(maxsize=8)
def _open_cached(index: str, stamp: tuple) -> Checkpoint:
    sharded = stamp[2]
    if not sharded:
        shards = {index: None}
        wanted = None
    else:
        folder = os.path.dirname(index)
        weight_map = _read_index(index)
        wanted = {n: _safe_member(folder, index, s) for n, s in weight_map.items()}
        shards = dict.fromkeys(sorted(set(wanted.values())))
        missing = [os.path.relpath(s, folder) for s in shards if not os.path.isfile(s)]
        if missing:
            raise FileNotFoundError(f"{index}: {len(missing)} shard file(s) named in the "
                                    f"index are missing: {', '.join(missing[:5])}"
                                    + (" ..." if len(missing) > 5 else ""))
    tensors: dict[str, TensorInfo] = {}
    fingerprint = [stamp[:2]]
    for shard in shards:
        st = os.stat(shard)
        fingerprint.append((os.path.basename(shard), st.st_size, st.st_mtime_ns))
        for name, (dtype, shape, start, nbytes) in _shard_layout(shard).items():
            if wanted is not None and wanted.get(name) != shard:
                continue
            if dtype in _FLOAT_DTYPES:
                tensors[name] = TensorInfo(name, shard, dtype, shape, start, nbytes)
            elif wanted is not None:
                wanted.pop(name)  # a listed non-float tensor (e.g. an integer buffer)
    if wanted is not None:
        absent = sorted(n for n in wanted if n not in tensors)
        if absent:
            raise ValueError(f"{index}: {len(absent)} tensor(s) of the weight_map are not in "
                             f"their shard: {', '.join(absent[:5])}"
                             + (" ..." if len(absent) > 5 else ""))
    ordered = dict(sorted(tensors.items(), key=lambda kv: _natural_key(kv[0])))
    return Checkpoint(index, ordered, tuple(fingerprint))


def _numpy_dtype(dtype: str) -> np.dtype:
    if dtype == "BF16":
        ml_dtypes = require("ml_dtypes", "ml_dtypes", "bfloat16 safetensors tensors lazily")
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(_FLOAT_DTYPES[dtype])


def mapped_tensor(info: TensorInfo, checkpoint: str = "") -> np.ndarray:
    """A read-only array over the bytes of one tensor, mapped on its own.

    F32 and F64 come as they are stored; F16 as float16 and BF16 as
    ``ml_dtypes.bfloat16`` (both converted to float32 by whatever uses them). The map
    is unmapped when the last array using it is garbage-collected.
    """
    dtype = _numpy_dtype(info.dtype)
    count = math.prod(info.shape)
    if count == 0:
        out = np.empty(info.shape, dtype)
        out.flags.writeable = False
        return out
    gran = mmap.ALLOCATIONGRANULARITY
    aligned = info.start - info.start % gran
    fd = os.open(info.shard, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        mm = _TensorMap(fd, info.start + info.nbytes - aligned, access=mmap.ACCESS_READ,
                        offset=aligned)
    finally:
        os.close(fd)
    mm.checkpoint, mm.tensor, mm.inner = checkpoint, info, info.start - aligned
    return np.frombuffer(mm, dtype, count, offset=mm.inner).reshape(info.shape)


def _tensor_map(arr) -> _TensorMap | None:
    base = arr
    while base is not None:
        if isinstance(base, _TensorMap):
            return base
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return None


def mapped_origin(arr: np.ndarray) -> tuple[str, str] | None:
    """``(checkpoint path, tensor name)`` when ``arr`` is exactly a tensor as
    :func:`mapped_tensor` mapped it (same bytes, dtype and shape, unchanged since the
    map is read-only); None for any other array."""
    if not isinstance(arr, np.ndarray):
        return None
    mm = _tensor_map(arr)
    if mm is None or not mm.checkpoint:
        return None
    info = mm.tensor
    try:
        expected = _numpy_dtype(info.dtype)
    except ImportError:
        return None
    start = np.frombuffer(mm, np.uint8, 1, offset=mm.inner).ctypes.data
    if (arr.dtype != expected or arr.shape != info.shape or not arr.flags.c_contiguous
            or arr.ctypes.data != start):
        return None
    return mm.checkpoint, info.name


def release_pages(obj: Layer | np.ndarray) -> bool:
    """Drop the resident pages of a layer (or array) mapped by this module from this
    process (``madvise(MADV_DONTNEED)``); they are read again from the file if used
    again. True when there was a map to release.

    Examples
    --------
    >>> import numpy as np
    >>> release_pages(np.zeros((2, 2)))
    False
    """
    arrays = [obj.weight, obj.bias] if isinstance(obj, Layer) else [obj]
    done = False
    for arr in arrays:
        mm = _tensor_map(arr) if arr is not None else None
        if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            mm.madvise(mmap.MADV_DONTNEED)
            done = True
    return done


def load_sharded_network(path: str | os.PathLike, name: str | None = None) -> Network:
    """A network from a sharded checkpoint (see :func:`lowentropy.load_network`): every
    floating tensor of 2 or more dimensions is a layer, memory-mapped on its own."""
    return open_checkpoint(path).network(name)
