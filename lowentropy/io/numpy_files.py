"""NumPy ``.npy`` and ``.npz`` files, read without pickle and memory-mapped.

An ``.npz`` archive written by ``np.savez`` stores its members uncompressed: each one is
mapped straight from the file, so a large archive is not read whole. Compressed members
(``np.savez_compressed``) are decompressed one at a time. Every header is checked
against the bytes that are there before any array is made; a zip archive is checked
before any member is read (:func:`open_zip`: size of the central directory, number of
members, duplicate names, overlapping members, compression bombs).
"""

from __future__ import annotations

import math
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npformat

from ..networks.model import Network
from ._common import MAX_DIMS, check_inflation, layers_from_tensors, no_layers, one_line

__all__ = [
    "read_npy", "iter_npz", "member_data_start", "load_npy_network", "load_npz_network",
    "FileMap", "open_zip", "ZIP_ERRORS", "MAX_MEMBERS",
]

#: What the zipfile module raises on a damaged archive (besides ValueError).
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError,
              RuntimeError, zlib.error, struct.error, OverflowError)
#: Most members an archive may hold (a guard against many-member bombs).
MAX_MEMBERS = 100_000
_CENTRAL_ENTRY_BYTES = 160  # central directory bytes allowed per member


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
        if len(shape) > MAX_DIMS or dtype.itemsize == 0:
            raise ValueError(f"{self.path}: array of {len(shape)} dimensions of {dtype} is "
                             "not readable")
        if start < 0 or start + nbytes > self.size:
            raise ValueError(f"{self.path}: array of {nbytes} bytes at offset {start} runs "
                             f"past the end of the file ({self.size} bytes)")
        if count == 0:
            out = np.empty(shape, dtype)
            out.flags.writeable = False
            return out
        flat = np.asarray(self._buf[start:start + nbytes]).view(dtype)
        return flat.reshape(shape, order="F" if fortran else "C")


def _header(fp: BinaryIO, what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Parse a ``.npy`` header (versions 1.0 and 2.0) with NumPy's safe parser (no pickle,
    at most 10 000 header bytes); only numeric dtypes of at most ``MAX_DIMS`` dimensions."""
    try:
        version = npformat.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (zipfile.BadZipFile, zlib.error):  # a damaged member: the caller says so
        raise
    except Exception as exc:  # the parser raises ValueError, SyntaxError, TokenError, ...
        raise ValueError(f"{what}: not a valid .npy array ({one_line(exc)})") from None
    if dtype.hasobject:
        raise ValueError(
            f"{what}: holds Python objects (dtype {dtype}); only numeric arrays are read "
            "(pickled data is never loaded)"
        )
    if dtype.kind not in "biufc" or dtype.subdtype is not None or dtype.itemsize == 0:
        raise ValueError(f"{what}: dtype {dtype} is not numeric; weights must be numeric")
    if len(shape) > MAX_DIMS or any(s < 0 for s in shape):
        raise ValueError(f"{what}: unreadable shape {shape} (negative, or more than "
                         f"{MAX_DIMS} dimensions)")
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
                         f"{max(size - offset, 0)} are there (refused before reading)")
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


def _central_directory(path: str, size: int) -> tuple[int, int]:
    """``(members, bytes)`` the end record of a zip archive declares (zip64 too), read
    before the zipfile module builds one object per member."""
    with open(path, "rb") as fp:
        tail_start = max(0, size - 65_557)
        fp.seek(tail_start)
        tail = fp.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return 0, 0  # the zipfile module reports the damage
        members, cd_size = struct.unpack("<HI", tail[at + 10:at + 16])
        if members == 0xFFFF or cd_size == 0xFFFFFFFF:
            loc = tail[at - 20:at] if at >= 20 else b""
            if loc[:4] == b"PK\x06\x07":
                (record,) = struct.unpack("<Q", loc[8:16])
                fp.seek(min(record, size))
                z64 = fp.read(56)
                if len(z64) == 56 and z64[:4] == b"PK\x06\x06":
                    members, cd_size = struct.unpack("<QQ", z64[32:48])
    return members, cd_size


def open_zip(path: str | os.PathLike, what: str = "zip archive") -> zipfile.ZipFile:
    """A checked ``ZipFile``: refused with a ValueError naming the file and the problem when
    the archive is corrupt, declares more than :data:`MAX_MEMBERS` members (or a central
    directory too large for that), repeats a member name, has members whose data overlap
    (a zip bomb trick) or run past the end, or holds a compressed member that would inflate
    beyond the limits of :func:`~lowentropy.io._common.check_inflation`.

    Examples
    --------
    >>> import os, tempfile, zipfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.zip")
    >>> with zipfile.ZipFile(path, "w") as zf:
    ...     zf.writestr("x.npy", b"0123")
    >>> with open_zip(path) as zf:
    ...     zf.namelist()
    ['x.npy']
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    members, cd_size = _central_directory(path, size)
    if members > MAX_MEMBERS or cd_size > MAX_MEMBERS * _CENTRAL_ENTRY_BYTES:
        raise ValueError(f"{path}: the {what} declares {members} members in a central "
                         f"directory of {cd_size} bytes; at most {MAX_MEMBERS} members are "
                         "read (refused)")
    try:
        zf = zipfile.ZipFile(path)
    except (ValueError, *ZIP_ERRORS) as exc:
        reason = f"corrupt or truncated zip archive ({one_line(exc)})"
        raise ValueError(f"{path}: {reason}" if what == "zip archive" else
                         f"{path}: not a readable {what}: {reason}") from None
    try:
        _check_members(path, zf, size)
    except BaseException:
        zf.close()
        raise
    return zf


def _check_members(path: str, zf: zipfile.ZipFile, size: int) -> None:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ValueError(f"{path}: {len(infos)} members, more than the {MAX_MEMBERS} read")
    names = set()
    for info in infos:
        if not info.filename:
            raise ValueError(f"{path}: a member has an empty name; the archive is corrupt")
        if info.filename in names:
            raise ValueError(f"{path}: member {info.filename!r:.100} appears twice; refused")
        names.add(info.filename)
        if info.compress_type != zipfile.ZIP_STORED:
            check_inflation(f"{path}: member {info.filename!r:.100}", info.file_size,
                            info.compress_size)
        elif info.file_size != info.compress_size:
            raise ValueError(f"{path}: stored member {info.filename!r:.100} declares "
                             f"{info.file_size} bytes but occupies {info.compress_size}")
    end = min(size, getattr(zf, "start_dir", size))  # members end where the directory starts
    with open(path, "rb") as raw:
        for info in sorted(infos, key=lambda i: i.header_offset, reverse=True):
            if info.header_offset < 0:
                raise ValueError(f"{path}: member {info.filename!r:.100} has a negative "
                                 "offset; the archive is corrupt")
            raw.seek(info.header_offset)
            local = raw.read(30)
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                raise ValueError(f"{path}: member {info.filename!r:.100} has a corrupt local "
                                 "header")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            data_end = info.header_offset + 30 + name_len + extra_len + info.compress_size
            if data_end > end:
                raise ValueError(f"{path}: member {info.filename!r:.100} ends at byte "
                                 f"{data_end}, past the next member or the end of the file "
                                 f"(byte {end}): overlapping or truncated members; refused")
            end = info.header_offset


def iter_npz(path: str | os.PathLike, *, mmap: bool = True,
             skip: tuple[str, ...] = ()) -> Iterator[tuple[str, np.ndarray]]:
    """``(key, array)`` for every ``.npy`` member of an ``.npz`` archive, in order.

    Members named in ``skip`` are passed over; any other non-``.npy`` member is an error.
    """
    path = os.fspath(path)
    zf = open_zip(path, ".npz archive")
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
            except ZIP_ERRORS as exc:
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
