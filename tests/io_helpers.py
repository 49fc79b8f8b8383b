"""Helpers of the I/O tests: memory-map checks and bit-exact comparison."""

from __future__ import annotations

import mmap
import os

import numpy as np


def is_memory_mapped(arr: np.ndarray) -> bool:
    """True when ``arr`` is a view into a memory-mapped file (not a copy in memory)."""
    base = arr
    while base is not None:
        if isinstance(base, np.memmap | mmap.mmap):
            return True
        base = getattr(base, "base", None)
    return False


def in_file_mapping(arr: np.ndarray, path) -> bool:
    """True when the memory of ``arr`` lies in a mapping of the file ``path`` (Linux)."""
    target = os.path.realpath(path)
    address = arr.__array_interface__["data"][0]
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].strip() == target:
                low, high = (int(x, 16) for x in fields[0].split("-"))
                if low <= address < high:
                    return True
    return False


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, shape and bytes (NaN payloads and -0.0 included)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and \
        np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def resident_bytes() -> int:
    """Resident memory of this process now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
