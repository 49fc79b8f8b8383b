"""PyTorch state_dict files (zip or legacy), read only with ``weights_only=True``.

``torch.load(..., weights_only=True)`` unpickles tensors and plain containers and
refuses every other Python object, so a file cannot run code when it is read. Files in
the zip format are memory-mapped.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping

import numpy as np

from ..networks.model import Network
from ._common import layers_from_tensors, no_layers, one_line, require

__all__ = ["read_state_dict", "load_torch_network", "WRAPPERS"]

#: Keys under which training checkpoints keep the state_dict, unwrapped in this order.
WRAPPERS = ("state_dict", "model_state_dict", "model", "module")


def _unwrap(obj):
    for _ in range(4):
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    return obj


def _to_numpy(torch, tensor) -> np.ndarray | None:
    """A float tensor as a numpy array (bfloat16 → float32); None for other tensors."""
    if tensor.layout != torch.strided or tensor.is_quantized or not tensor.is_floating_point():
        return None
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    try:
        return tensor.numpy()
    except (TypeError, RuntimeError):  # float8 and other dtypes numpy has no match for
        return None


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The floating-point tensors of a PyTorch state_dict file, by name, in order.

    Loaded only by ``torch.load(path, map_location="cpu", weights_only=True)``; a file
    holding any other Python object is refused. A checkpoint that nests the state_dict
    under ``"state_dict"``, ``"model_state_dict"``, ``"model"`` or ``"module"`` is
    unwrapped. Integer and boolean tensors are skipped.

    Raises
    ------
    ImportError
        If torch is not installed.
    ValueError
        If the file is corrupt, holds objects other than tensors, or is not a mapping of
        names to tensors.

    Examples
    --------
    >>> import os, tempfile, pytest
    >>> torch = pytest.importorskip("torch")
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.pt")
    >>> torch.save({"model": {"fc.weight": torch.ones(2, 3)}, "epoch": 3}, path)
    >>> {k: v.shape for k, v in read_state_dict(path).items()}
    {'fc.weight': (2, 3)}
    """
    path = os.fspath(path)
    torch = require("torch", "torch", "PyTorch files")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True,
                         mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        reason = one_line(exc, prefer="unsupported")
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise ValueError(
                f"{path}: refused: the file holds Python objects other than tensors and "
                f"plain containers, which are never unpickled ({reason})"
            ) from None
        raise ValueError(f"{path}: not a readable PyTorch file ({reason})") from None
    obj = _unwrap(obj)
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: holds a {type(obj).__name__}, not a state_dict (a mapping "
                         "of names to tensors)")
    out = {}
    for key, value in obj.items():
        if isinstance(key, str) and isinstance(value, torch.Tensor):
            arr = _to_numpy(torch, value)
            if arr is not None:
                out[key] = arr
    return out


def load_torch_network(path: str | os.PathLike, name: str) -> Network:
    """A network from a PyTorch state_dict file (see ``load_network``)."""
    path = os.fspath(path)
    layers = layers_from_tensors(read_state_dict(path).items())
    if not layers:
        raise no_layers(path, "PyTorch")
    return Network(name, layers, source=path,
                   description="weights read from a PyTorch state_dict")
