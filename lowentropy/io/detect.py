"""Which kind of weight file a path holds, told by its content (magic bytes) first.

The extension is consulted only when the content matches no known signature, so that a
damaged file of a known kind gets that reader's specific error.
"""

from __future__ import annotations

import os

from ._common import SUPPORTED
from .numpy_files import open_zip

__all__ = ["detect_format", "FILE_FORMATS"]

#: The names ``detect_format`` returns.
FILE_FORMATS = ("npy", "npz", "safetensors", "onnx", "torch", "keras", "lowentropy")

#: The member that marks a file written by ``lowentropy.save``.
META_MEMBER = "lowentropy.json"

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_HDF5_OFFSETS = (0, 512, 1024, 2048)  # after a user block of 512 * 2**k bytes
_ONNX_NEXT_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72}

_EXTENSIONS = {
    ".npy": "npy", ".npz": "npz", ".safetensors": "safetensors", ".onnx": "onnx",
    ".pt": "torch", ".pth": "torch", ".ckpt": "torch", ".h5": "keras", ".hdf5": "keras",
    ".keras": "keras",
}


def _zip_kind(path: str) -> str:
    with open_zip(path) as zf:  # checked: corrupt, overlapping, bombs, too many members
        names = zf.namelist()
    if META_MEMBER in names:
        return "lowentropy"
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "torch"
    if "model.weights.h5" in names:
        return "keras"
    if all(n.endswith(".npy") for n in names):
        return "npz"
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    raise ValueError(f"{path}: a zip archive that is none of the supported formats "
                     f"(members: {shown}); supported: {'; '.join(SUPPORTED)}")


def _is_onnx(head: bytes) -> bool:
    """A serialized ModelProto starts with ``ir_version`` (field 1, a small varint)."""
    return len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] < 0x80 and \
        head[2] in _ONNX_NEXT_TAGS


def detect_format(path: str | os.PathLike) -> str:
    """The kind of weight file at ``path``: one of :data:`FILE_FORMATS`.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the content matches no supported format (the message lists them).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.bin")
    >>> with open(path, "wb") as f:
    ...     np.save(f, np.ones((2, 3), np.float32))
    >>> detect_format(path)  # by content, whatever the extension
    'npy'
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    with open(path, "rb") as fp:
        head = fp.read(16)
        signatures = []
        for offset in _HDF5_OFFSETS:
            fp.seek(offset)
            signatures.append(fp.read(len(_HDF5_MAGIC)))
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_ZIP_MAGICS):
        return _zip_kind(path)
    if _HDF5_MAGIC in signatures:
        return "keras"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # a pickle
        return "torch"
    if _is_onnx(head):
        return "onnx"
    if not head:
        raise ValueError(f"{path}: the file is empty")
    by_extension = _EXTENSIONS.get(os.path.splitext(path)[1].lower())
    if by_extension is not None:
        return by_extension
    raise ValueError(f"{path}: unknown weight file format (starts with {head[:8]!r}); "
                     f"supported: {'; '.join(SUPPORTED)}")
