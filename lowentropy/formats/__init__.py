"""The matrix formats and their registry.

``FORMATS`` (name → class) is the single list the rest of the project iterates: a
format added here appears in every report, benchmark, test and dashboard.
"""

from __future__ import annotations

from .base import POLICIES, Format, OpCounts, StorageReport
from .cer import CER
from .cser import CSER
from .csr import CSR
from .dense import Dense
from .efr import EFR
from .huffman import Huffman
from .palette import Palette

__all__ = [
    "FORMATS", "get_format", "Format", "Dense", "CSR", "CER", "CSER", "Palette", "Huffman",
    "EFR",
    "StorageReport", "OpCounts", "POLICIES",
]

FORMATS: dict[str, type[Format]] = {
    cls.name: cls for cls in (Dense, CSR, CER, CSER, Palette, Huffman, EFR)
}


def get_format(name: str) -> type[Format]:
    """The format class registered under ``name`` (``"dense"``, ``"csr"``, ``"cer"``,
    ``"cser"``, ``"palette"``, ``"huffman"``, ``"efr"``, ...: the keys of ``FORMATS``)."""
    try:
        return FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown format {name!r}; registered: {', '.join(FORMATS)}") from None
