"""Helpers every reader shares: optional imports, error messages, tensors → layers."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from types import ModuleType

import numpy as np

from ..networks.model import Layer

__all__ = [
    "require", "one_line", "unreadable", "layers_from_tensors", "bias_for", "SUPPORTED",
    "MAX_INFLATED_BYTES", "MAX_INFLATE_RATIO", "RATIO_FREE_BYTES", "MAX_DIMS", "check_inflation",
]

#: Most bytes one compressed member or dataset may inflate to (a guard against bombs).
MAX_INFLATED_BYTES = 8 * 2**30
#: Highest ratio of inflated to stored bytes above :data:`RATIO_FREE_BYTES`. Weights,
#: even pruned and quantized, compress far less (deflate reaches ~1000:1 on zeros).
MAX_INFLATE_RATIO = 200
#: Inflated sizes up to this are accepted whatever the ratio (small all-zero tensors).
RATIO_FREE_BYTES = 16 * 2**20
#: Most dimensions a tensor may declare.
MAX_DIMS = 32

#: What ``load_network`` reads, for error messages.
SUPPORTED = (
    "NumPy .npy/.npz",
    "safetensors",
    "ONNX (.onnx; needs onnx)",
    "PyTorch state_dict (.pt/.pth/.bin; needs torch)",
    "Keras .h5/.keras (needs h5py)",
    "lowentropy .npz (written by lowentropy.save)",
)


def require(module: str, package: str, what: str) -> ModuleType:
    """Import an optional dependency or say which package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"reading {what} needs the optional package {package!r}: pip install {package}"
        ) from exc


def one_line(exc: BaseException, prefer: str = "") -> str:
    """A one-line reason from an exception message (the line holding ``prefer`` when
    there is one, else the first non-empty line), at most 200 characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    chosen = next((line for line in lines if prefer and prefer.lower() in line.lower()),
                  lines[0])
    return chosen if len(chosen) <= 200 else chosen[:197] + "..."


def unreadable(path, what: str, exc: BaseException, prefer: str = "") -> ValueError:
    """The ValueError for a file a library could not parse (corrupt, truncated)."""
    return ValueError(f"{path}: not a readable {what} file ({one_line(exc, prefer)})")


def check_inflation(what: str, inflated: int, stored: int) -> None:
    """Refuse a compressed item declaring ``inflated`` bytes from ``stored`` bytes when it
    exceeds :data:`MAX_INFLATED_BYTES` or, above :data:`RATIO_FREE_BYTES`, the ratio
    :data:`MAX_INFLATE_RATIO` (a compression bomb). Checked before anything is inflated."""
    if inflated > MAX_INFLATED_BYTES:
        raise ValueError(f"{what}: declares {inflated} bytes once decompressed, over the limit "
                         f"of {MAX_INFLATED_BYTES} bytes; refused (compression bomb?)")
    if inflated > RATIO_FREE_BYTES and inflated > MAX_INFLATE_RATIO * max(stored, 1):
        raise ValueError(f"{what}: {stored} compressed bytes declare {inflated} bytes "
                         f"decompressed (ratio {inflated / max(stored, 1):.0f}:1, over "
                         f"{MAX_INFLATE_RATIO}:1); refused (compression bomb?)")


_WEIGHT_SUFFIXES = (".weight", "_weight", ".kernel", "_kernel")


def bias_for(name: str, out: int, vectors: dict[str, np.ndarray]) -> np.ndarray | None:
    """The bias of weight ``name`` among the 1-D ``vectors``: ``<layer>.bias`` or
    ``<layer>_bias`` where ``<layer>`` is ``name`` with or without a ``.weight`` /
    ``_weight`` / ``.kernel`` / ``_kernel`` suffix; only one of length ``out``."""
    bases = [name] + [name[: -len(s)] for s in _WEIGHT_SUFFIXES if name.endswith(s)]
    for base in reversed(bases):
        for sep in (".", "_"):
            vec = vectors.get(f"{base}{sep}bias")
            if vec is not None and vec.shape == (out,):
                return vec
    return None


def _is_weight_dtype(arr: np.ndarray) -> bool:
    return arr.dtype.kind == "f"


def kind_of(name: str, ndim: int) -> str:
    """``conv`` for tensors of 3 or more dimensions; ``embedding`` for a matrix whose
    name says so; else ``fc``."""
    if ndim >= 3:
        return "conv"
    return "embedding" if "embed" in name.lower() else "fc"


def layers_from_tensors(tensors: Iterable[tuple[str, np.ndarray]]) -> list[Layer]:
    """Layers from named tensors, in order: every floating tensor of 2 or more
    dimensions is a layer; 1-D floating tensors named like its bias are attached;
    integer, boolean and 0-D tensors are skipped. NaN values are kept as they are."""
    items = [(name, arr) for name, arr in tensors if _is_weight_dtype(arr)]
    vectors = {name: arr for name, arr in items if arr.ndim == 1}
    layers = []
    for name, arr in items:
        if arr.ndim >= 2:
            bias = bias_for(name, arr.shape[0], vectors)
            layers.append(Layer(name, arr, kind_of(name, arr.ndim), bias=bias))
    return layers


def no_layers(path, what: str) -> ValueError:
    return ValueError(
        f"{path}: the {what} file holds no floating-point tensor of 2 or more dimensions "
        "(no weight layer to read)"
    )
