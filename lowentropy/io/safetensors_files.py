"""safetensors files, parsed here (no dependency) and memory-mapped.

Layout: an 8-byte little-endian header length ``n``, ``n`` bytes of UTF-8 JSON mapping each
tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to
the data that follows the header), an optional ``"__metadata__"`` map of strings, then the
tensors' bytes, little-endian, which must cover the data exactly, without overlap or hole.
Every field is checked before a tensor is mapped: a hostile header gives a ValueError.
"""

from __future__ import annotations

import json
import math
import os
import struct

import numpy as np

from ..networks.model import Network
from ._common import MAX_DIMS, layers_from_tensors, no_layers
from .numpy_files import FileMap

__all__ = ["read_safetensors", "load_safetensors_network", "MAX_HEADER"]

#: Largest header accepted (the reference implementation's limit).
MAX_HEADER = 100_000_000

#: Floating dtypes read as weights.
_FLOATS = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}
#: Other dtypes of the format, skipped: bits per element.
_SKIPPED_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "I16": 16, "U16": 16, "I32": 32, "U32": 32, "I64": 64,
    "U64": 64, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "C64": 64, "F4": 4, "F6_E2M3": 6,
    "F6_E3M2": 6,
}


def _bad(path, reason: str) -> ValueError:
    return ValueError(f"{path}: invalid safetensors file: {reason}")


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return out


def _read_header(path: str, size: int) -> tuple[dict, int]:
    if size < 8:
        raise _bad(path, f"{size} bytes, shorter than the 8-byte header length")
    with open(path, "rb") as fp:
        (n,) = struct.unpack("<Q", fp.read(8))
        if n > size - 8:
            raise _bad(path, f"header length {n} is larger than the file ({size} bytes)")
        if n > MAX_HEADER:
            raise _bad(path, f"header length {n} exceeds the limit of {MAX_HEADER} bytes")
        raw = fp.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise _bad(path, f"key {exc.args[0]!r:.100} appears twice in the header") from None
    except RecursionError:
        raise _bad(path, "header JSON is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(path, f"header is not UTF-8 JSON ({str(exc):.200})") from None
    if not isinstance(header, dict):
        raise _bad(path, f"header must be a JSON object, got {type(header).__name__}")
    return header, 8 + n


def _entry(path, name: str, entry) -> tuple[str, tuple[int, ...], int, int]:
    """Validated ``(dtype, shape, begin, end)`` of one header entry."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise _bad(path, f"tensor {name!r}: entry must hold exactly dtype, shape and "
                         f"data_offsets, got {entry!r:.200}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or (dtype not in _FLOATS and dtype not in _SKIPPED_BITS):
        known = ", ".join([*_FLOATS, *_SKIPPED_BITS])
        raise _bad(path, f"tensor {name!r}: unknown dtype {dtype!r:.50} (known: {known})")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(
        type(s) is int and s >= 0 for s in shape
    ):
        raise _bad(path, f"tensor {name!r}: shape must be a list of at most {MAX_DIMS} "
                         f"non-negative integers, got {shape!r:.200}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(type(o) is int for o in offsets) or not 0 <= offsets[0] <= offsets[1]):
        raise _bad(path, f"tensor {name!r}: data_offsets must be [begin, end] with "
                         f"0 <= begin <= end, got {offsets!r:.200}")
    begin, end = offsets
    bits = 8 * np.dtype(_FLOATS[dtype]).itemsize if dtype in _FLOATS else _SKIPPED_BITS[dtype]
    nbits = math.prod(shape) * bits
    if nbits != 8 * (end - begin):
        raise _bad(path, f"tensor {name!r}: shape {shape} of {dtype} takes {nbits / 8:g} "
                         f"bytes but data_offsets span {end - begin}")
    return dtype, tuple(shape), begin, end



def header_entries(path: str) -> tuple[dict[str, tuple], int]:
    """The checked header of a safetensors file: name → (dtype, shape, begin, end) with
    offsets relative to the data, which starts at the returned byte. The tensors must
    tile the data exactly: no overlap, no hole, nothing past the end, nothing after."""
    size = os.path.getsize(path)
    header, data_start = _read_header(path, size)
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise _bad(path, "__metadata__ must map strings to strings")
    data_size = size - data_start
    entries = {name: _entry(path, name, e) for name, e in header.items()}
    spans = sorted((begin, end, name) for name, (_, _, begin, end) in entries.items())
    covered = 0
    for begin, end, name in spans:
        if begin < covered:
            raise _bad(path, f"tensor {name!r} overlaps the previous tensor")
        if begin > covered:
            raise _bad(path, f"hole of {begin - covered} bytes before tensor {name!r}")
        if end > data_size:
            raise _bad(path, f"tensor {name!r} ends at byte {end}, past the end of the data "
                             f"({data_size} bytes; truncated file?)")
        covered = end
    if covered != data_size:
        raise _bad(path, f"{data_size - covered} trailing bytes after the last tensor")
    return entries, data_start

def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The floating-point tensors of a safetensors file, by name, in file order.

    F32, F16 and F64 tensors are read-only views into a memory map of the file (nothing
    is read until used); BF16 tensors are converted to float32 (exactly). Integer,
    boolean and 8-bit or smaller float tensors are skipped.

    Raises
    ------
    ValueError
        When the header is malformed: too long, not JSON, an unknown dtype, a negative
        dimension, offsets outside the data, overlapping, leaving holes or not matching
        the shape.

    Examples
    --------
    >>> import json, os, struct, tempfile, numpy as np
    >>> W = np.arange(6, dtype="<f4").reshape(2, 3)
    >>> head = json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}})
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.safetensors")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(struct.pack("<Q", len(head)) + head.encode() + W.tobytes())
    >>> read_safetensors(path)["w"]
    array([[0., 1., 2.],
           [3., 4., 5.]], dtype=float32)
    """
    path = os.fspath(path)
    entries, data_start = header_entries(path)
    filemap = FileMap(path)
    out: dict[str, np.ndarray] = {}
    for name, (dtype, shape, begin, _) in sorted(entries.items(), key=lambda kv: kv[1][2]):
        if dtype not in _FLOATS:
            continue
        arr = filemap.array(data_start + begin, np.dtype(_FLOATS[dtype]), shape)
        if dtype == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr
    return out


def load_safetensors_network(path: str | os.PathLike, name: str) -> Network:
    """A network from the tensors of a safetensors file (see ``load_network``)."""
    path = os.fspath(path)
    layers = layers_from_tensors(read_safetensors(path).items())
    if not layers:
        raise no_layers(path, "safetensors")
    return Network(name, layers, source=path,
                   description="weights read from a safetensors file")
