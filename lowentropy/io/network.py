"""``load_network``: an embedded network by name, or the weights of a model file."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType

from ..formats import Format
from ..networks.model import Layer, Network
from .detect import detect_format
from .keras_files import load_keras_network
from .numpy_files import load_npy_network, load_npz_network
from .onnx_files import load_onnx_network
from .safetensors_files import load_safetensors_network
from .sharded import load_sharded_network
from .store import load
from .torch_files import load_torch_network

__all__ = ["load_network"]

_REGISTRY = "lowentropy.networks.registry"


def _registry() -> ModuleType | None:
    """The embedded-network registry, or None while it does not exist."""
    try:
        return importlib.import_module(_REGISTRY)
    except ModuleNotFoundError as exc:
        if exc.name == _REGISTRY:
            return None
        raise


def _load_saved(path: str, name: str | None) -> Network:
    """A network saved by ``save`` (renamed when ``name`` is given), or a saved format as
    a one-layer network."""
    obj = load(path)
    if isinstance(obj, Format):
        name = name or _stem(path)
        return Network(name, [Layer(name, obj.to_dense())], source=path,
                       description=f"a {obj.name} matrix saved by lowentropy")
    if name is not None:
        obj.name = name
    return obj


def _stem(path: str) -> str:
    base = os.path.basename(path)
    return base.split(".")[0] or base


_FILE_READERS: dict[str, Callable[[str, str], Network]] = {
    "npy": load_npy_network,
    "npz": load_npz_network,
    "safetensors": load_safetensors_network,
    "onnx": load_onnx_network,
    "torch": load_torch_network,
    "keras": load_keras_network,
}


def load_network(source: str | os.PathLike, *, name: str | None = None, **options) -> Network:
    """A network: one of the embedded networks by name, or the weights of a model file.

    A file's kind is told by its content (magic bytes), the extension only breaking
    ties for damaged files:

    - NumPy ``.npy`` (one layer) and ``.npz``: every floating array of 2 or more
      dimensions is a layer (4-D: convolution, 2-D: fully connected); 1-D arrays named
      ``<layer>.bias`` or ``<layer>_bias`` are attached as biases. Read without pickle,
      memory-mapped.
    - safetensors: parsed and validated here, memory-mapped; BF16 becomes float32.
    - A sharded safetensors checkpoint (Hugging Face layout): its folder or its
      ``*.safetensors.index.json``. Only the index and the shard headers are read; each
      tensor is a memory map of its own, and F16 / BF16 tensors stay 2-byte
      (``float16`` / ``ml_dtypes.bfloat16``) until a layer is used, which converts that
      layer to float32. Layers come in natural name order (``layers.2`` before
      ``layers.10``); see :mod:`lowentropy.io.sharded`.
    - ONNX (needs ``onnx``): the initializers feeding Gemm, MatMul and Conv nodes, as
      ``out x in`` matrices and ``(F, C, kh, kw)`` kernels.
    - PyTorch state_dict (needs ``torch``): read only with ``weights_only=True``; a
      checkpoint nesting it under ``"state_dict"`` or ``"model"`` is unwrapped.
    - Keras ``.h5`` / ``.keras`` (needs ``h5py``): kernels transposed to ``out x in`` and
      ``(F, C, kh, kw)``.
    - A network saved by :func:`lowentropy.save`.

    Weights are kept as the file has them: NaN values stay visible, dtypes are kept
    (float16 too). ``uses_per_inference`` is 1 unless the file tells more (ONNX shapes).

    Parameters
    ----------
    source : str or os.PathLike
        A name from ``lowentropy.list_networks()``, the path of a weight file, or a
        sharded checkpoint's folder or index file.
    name : str, optional
        The network's name; by default the embedded name or the file name without its
        extension.
    **options
        Passed to the embedded network's builder; files take none.

    Raises
    ------
    FileNotFoundError
        If ``source`` is neither an embedded name nor an existing file.
    ImportError
        If the file needs an optional package that is not installed (the message says
        which to ``pip install``).
    ValueError
        If the format is unknown (the message lists the supported ones), or the file is
        corrupt, truncated or holds no weight layer.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "mlp.npz")
    >>> np.savez(path, fc1=np.ones((4, 3), np.float32), fc1_bias=np.zeros(4, np.float32),
    ...          fc2=np.ones((2, 4), np.float32))
    >>> net = load_network(path)
    >>> net
    Network('mlp', 2 layers, 20 weights)
    >>> [(layer.name, layer.kind, layer.matrix.shape, layer.bias is not None) for layer in net]
    [('fc1', 'fc', (4, 3), True), ('fc2', 'fc', (2, 4), False)]
    """
    if isinstance(source, str):
        registry = _registry()
        if registry is not None and source in registry.list_networks():
            net = registry.embedded_network(source, **options)
            if name is not None:
                net.name = name
            return net
    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"source must be a network name or a file path, got "
                        f"{type(source).__name__}")
    path = os.fspath(source)
    if options:
        raise TypeError(f"options {sorted(options)} apply only to embedded networks, not to "
                        f"the file {path!r}")
    if not os.path.exists(path):
        known = ""
        if registry := _registry():
            known = f"; embedded networks: {', '.join(registry.list_networks())}"
        raise FileNotFoundError(f"{path!r} is neither an existing file nor an embedded "
                                f"network{known}")
    if os.path.isdir(path) or path.endswith(".index.json"):
        return load_sharded_network(path, name)  # says what a folder lacks
    kind = detect_format(path)
    if kind == "lowentropy":
        return _load_saved(path, name)
    return _FILE_READERS[kind](path, name if name is not None else _stem(path))
