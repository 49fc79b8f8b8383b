"""NumPy ``.npy`` and ``.npz`` files, read without pickle and memory-mapped.

An ``.npz`` archive written by ``np.savez`` stores its members uncompressed: each one is
mapped straight from the file, so a large archive is not read whole. Compressed members
(``np.savez_compressed``) are decompressed one at a time. Every header is checked
against the bytes that are there before any array is made.
"""

from __future__ import annotations

import math
import os
import struct
import zipfile
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npformat

from ..networks.model import Network
from ._common import layers_from_tensors, no_layers, one_line

__all__ = [
    "read_npy", "iter_npz", "member_data_start", "load_npy_network", "load_npz_network",
    "FileMap",
]


class FileMap:
    """One read-only memory map of a whole file; arrays are views into it."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self.size = os.path.getsize(self.path)
        self._buf = (np.memmap(self.path, np.uint8, "r") if self.size
                     else np.empty(0, np.uint8))

    def array(self, start: int, dtype: np.dtype, shape: tuple[int, ...],
              fortran: bool = False) -> np.ndarray:
        """The array of ``shape`` and ``dtype`` whose bytes start at ``start``."""
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if start < 0 or start + nbytes > self.size:
            raise ValueError(f"array of {nbytes} bytes at offset {start} runs past the end "
                             f"of the file ({self.size} bytes)")
        if count == 0:
            out = np.empty(shape, dtype)
            out.flags.writeable = False
            return out
        flat = np.asarray(self._buf[start:start + nbytes]).view(dtype)
        return flat.reshape(shape, order="F" if fortran else "C")


def _header(fp: BinaryIO, what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Parse a ``.npy`` header (versions 1.0 and 2.0) with NumPy's safe parser."""
    try:
        version = npformat.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise ValueError(f"{what}: not a valid .npy array ({one_line(exc)})") from None
    if dtype.hasobject:
        raise ValueError(
            f"{what}: holds Python objects (dtype {dtype}); only numeric arrays are read "
            "(pickled data is never loaded)"
        )
    if any(s < 0 for s in shape):
        raise ValueError(f"{what}: negative dimension in shape {shape}")
    return tuple(shape), bool(fortran), dtype


def read_npy(fp: BinaryIO, size: int, what: str, *, filemap: FileMap | None = None,
             start: int = 0) -> np.ndarray:
    """Read one ``.npy`` array of ``size`` bytes from ``fp``.

    With ``filemap`` the array is a read-only view into the memory-mapped file, whose
    ``.npy`` bytes begin at ``start``; otherwise the data are read from ``fp``.
    """
    shape, fortran, dtype = _header(fp, what)
    offset = fp.tell()
    nbytes = math.prod(shape) * dtype.itemsize
    if offset + nbytes > size:
        raise ValueError(f"{what}: truncated: shape {shape} of {dtype} needs {nbytes} bytes, "
                         f"{max(size - offset, 0)} are there")
    if filemap is not None:
        return filemap.array(start + offset, dtype, shape, fortran)
    data = fp.read(nbytes)
    if len(data) != nbytes:
        raise ValueError(f"{what}: truncated: {len(data)} of {nbytes} bytes")
    arr = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
    return arr


def member_data_start(fp: BinaryIO, info: zipfile.ZipInfo) -> int | None:
    """File offset of an uncompressed member's bytes (from its local header)."""
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        return None
    fp.seek(info.header_offset)
    local = fp.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise ValueError(f"{getattr(fp, 'name', 'archive')}: member {info.filename!r} has a "
                         "corrupt local header")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    return info.header_offset + 30 + name_len + extra_len


def iter_npz(path: str | os.PathLike, *, mmap: bool = True,
             skip: tuple[str, ...] = ()) -> Iterator[tuple[str, np.ndarray]]:
    """``(key, array)`` for every ``.npy`` member of an ``.npz`` archive, in order.

    Members named in ``skip`` are passed over; any other non-``.npy`` member is an error.
    """
    path = os.fspath(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path}: not a readable .npz archive ({one_line(exc)})") from None
    with zf, open(path, "rb") as raw:
        filemap = FileMap(path) if mmap else None
        for info in zf.infolist():
            if info.filename in skip or info.is_dir():
                continue
            if not info.filename.endswith(".npy"):
                raise ValueError(f"{path}: member {info.filename!r} is not a .npy array")
            key = info.filename[: -len(".npy")]
            what = f"{path}: array {key!r}"
            try:
                start = member_data_start(raw, info) if filemap is not None else None
                with zf.open(info) as fp:
                    if start is not None:
                        yield key, read_npy(fp, info.file_size, what, filemap=filemap,
                                            start=start)
                    else:
                        yield key, read_npy(fp, info.file_size, what)
            except (zipfile.BadZipFile, EOFError, OSError) as exc:
                raise ValueError(f"{what}: corrupt member ({one_line(exc)})") from None


def _check_objects(path, arrays: list[tuple[str, np.ndarray]]) -> None:
    for key, arr in arrays:
        if arr.dtype.kind not in "biufc":
            raise ValueError(f"{path}: array {key!r} has dtype {arr.dtype}; weights must be "
                             "numeric")


def load_npy_network(path: str | os.PathLike, name: str) -> Network:
    """A one-layer network from a ``.npy`` file (memory-mapped); the layer is named
    after the file."""
    path = os.fspath(path)
    layer_name = os.path.basename(path).split(".")[0] or name
    size = os.path.getsize(path)
    with open(path, "rb") as fp:
        arr = read_npy(fp, size, f"{path}", filemap=FileMap(path))
    _check_objects(path, [(layer_name, arr)])
    layers = layers_from_tensors([(layer_name, arr)])
    if not layers:
        raise ValueError(f"{path}: the array has shape {arr.shape} and dtype {arr.dtype}; a "
                         "weight layer needs a floating-point array of 2 or more dimensions")
    return Network(name, layers, source=path, description="weights read from a .npy file")


def load_npz_network(path: str | os.PathLike, name: str) -> Network:
    """A network from the arrays of an ``.npz`` archive (see ``load_network``)."""
    path = os.fspath(path)
    arrays = list(iter_npz(path))
    _check_objects(path, arrays)
    layers = layers_from_tensors(arrays)
    if not layers:
        raise no_layers(path, ".npz")
    return Network(name, layers, source=path, description="weights read from a .npz archive")
