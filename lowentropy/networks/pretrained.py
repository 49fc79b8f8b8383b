"""torchvision's trained weights for the catalogue networks, read from the local torch hub
cache. Nothing is downloaded: a missing file is an error that says where to put it.

Files are read only with ``torch.load(path, map_location="cpu", weights_only=True)``,
which refuses every Python object other than tensors and plain containers.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .catalogue import CATALOGUE, LayerSpec

__all__ = ["CHECKPOINTS", "hub_checkpoint_dir", "find_checkpoint", "read_pretrained"]

#: torchvision's checkpoint file names, the canonical (ImageNet-1K V1) one first; later
#: names are other releases with the same layers.
CHECKPOINTS: dict[str, tuple[str, ...]] = {
    "alexnet": ("alexnet-owt-7be5be79.pth", "alexnet-owt-4df8aa71.pth"),
    "vgg16": ("vgg16-397923af.pth",),
    "resnet152": ("resnet152-394f9c45.pth", "resnet152-f82ba261.pth",
                  "resnet152-b121ed2d.pth"),
    "densenet121": ("densenet121-a639ec97.pth",),
}

#: Old DenseNet checkpoints name ``denselayerN.norm.1`` what torchvision now calls
#: ``denselayerN.norm1`` (torchvision renames them with this pattern when loading).
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)

_WRAPPERS = ("state_dict", "model_state_dict", "model")


def hub_checkpoint_dir() -> Path:
    """The folder torch hub keeps downloaded checkpoints in.

    ``$TORCH_HOME/hub/checkpoints``; without ``TORCH_HOME``,
    ``$XDG_CACHE_HOME/torch/hub/checkpoints`` or ``~/.cache/torch/hub/checkpoints``
    (the rule ``torch.hub.get_dir`` follows).

    Examples
    --------
    >>> hub_checkpoint_dir().parts[-2:]
    ('hub', 'checkpoints')
    """
    home = os.environ.get("TORCH_HOME")
    if not home:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        home = os.path.join(cache, "torch")
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints"


def find_checkpoint(name: str) -> Path:
    """The path of a catalogue network's torchvision checkpoint in the hub cache.

    Raises
    ------
    FileNotFoundError
        If none of the known file names is there; the message says where it looked and
        how to get the file.

    Examples
    --------
    >>> try:  # the file's name when it is there, else the error names it
    ...     print(find_checkpoint("vgg16").name)
    ... except FileNotFoundError as exc:
    ...     print(CHECKPOINTS["vgg16"][0] if CHECKPOINTS["vgg16"][0] in str(exc) else exc)
    vgg16-397923af.pth
    """
    if name not in CHECKPOINTS:
        raise ValueError(f"unknown catalogue network {name!r}; valid names: "
                         f"{', '.join(CHECKPOINTS)}")
    folder = hub_checkpoint_dir()
    for filename in CHECKPOINTS[name]:
        if (folder / filename).is_file():
            return folder / filename
    raise FileNotFoundError(
        f"no torchvision checkpoint for {name} in {folder} (looked for "
        f"{', '.join(CHECKPOINTS[name])}). Nothing is downloaded here: fetch it once on a "
        f"machine with internet access, e.g. torchvision.models.get_model({name!r}, "
        f"weights='IMAGENET1K_V1'), which stores {CHECKPOINTS[name][0]} in that folder, "
        f"and copy it to {folder} (or set TORCH_HOME); or pass checkpoint=PATH."
    )


def _load_state_dict(path: Path) -> Mapping:
    try:
        import torch
    except ImportError as exc:
        raise ImportError("reading torchvision checkpoints needs the optional package "
                          "'torch': pip install torch") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True,
                         mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc)
        raise ValueError(f"{path}: not a readable PyTorch state_dict ({reason})") from exc
    for _ in range(3):
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: holds a {type(obj).__name__}, not a state_dict mapping "
                         f"names to tensors")
    return obj


def _canonical_keys(state: Mapping) -> dict:
    """Keys as torchvision's current modules name them: ``module.`` prefixes dropped,
    old DenseNet keys renamed."""
    out = {}
    for key, value in state.items():
        if not isinstance(key, str):
            continue
        key = key.removeprefix("module.")
        match = _DENSENET_OLD_KEY.match(key)
        out[match.group(1) + match.group(2) if match else key] = value
    return out


def _as_array(path: Path, key: str, value, expected: tuple[int, ...], name: str) -> np.ndarray:
    shape = tuple(getattr(value, "shape", ()))
    if not hasattr(value, "numpy") or not getattr(value, "is_floating_point", lambda: False)():
        raise ValueError(f"{path}: {key} is not a floating-point tensor")
    if shape != expected:
        raise ValueError(f"{path}: {key} has shape {shape}, but the {CATALOGUE[name]} "
                         f"catalogue expects {expected}; is this a {name} checkpoint?")
    array = value.detach().float().numpy()
    return np.asarray(array, dtype=np.float32)


def read_pretrained(name: str, specs: tuple[LayerSpec, ...],
                    checkpoint: str | os.PathLike | None = None
                    ) -> tuple[dict[str, np.ndarray], Path]:
    """The float32 weights and biases of ``specs`` from a torchvision checkpoint.

    Parameters
    ----------
    name : str
        The catalogue network (``"alexnet"``, ...).
    specs : tuple of LayerSpec
        The layers to read (e.g. a subset of ``catalogue_specs(name)``).
    checkpoint : path, optional
        The ``state_dict`` file; by default the canonical file in the torch hub cache.

    Returns
    -------
    tensors : dict
        ``state_dict`` key -> array, for each weight and bias of ``specs``.
    path : Path
        The file read.

    Raises
    ------
    ImportError
        If ``torch`` is not installed.
    FileNotFoundError
        If the file is missing.
    ValueError
        If the file is unreadable, or a key is missing or has another shape than the
        catalogue's.

    Examples
    --------
    >>> import os, tempfile, pytest
    >>> torch = pytest.importorskip("torch")
    >>> from lowentropy.networks.catalogue import catalogue_specs
    >>> spec = catalogue_specs("resnet152")[-1]
    >>> path = os.path.join(tempfile.mkdtemp(), "head.pth")
    >>> torch.save({"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.ones(1000)}, path)
    >>> tensors, _ = read_pretrained("resnet152", (spec,), path)
    >>> tensors["fc.weight"].shape, float(tensors["fc.bias"][0])
    ((1000, 2048), 1.0)
    """
    if checkpoint is None:
        path = find_checkpoint(name)
    else:
        path = Path(os.fspath(checkpoint))
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    state = _canonical_keys(_load_state_dict(path))
    wanted = [(s.name, s.shape) for s in specs]
    wanted += [(s.bias_name, (s.shape[0],)) for s in specs if s.has_bias]
    missing = [key for key, _ in wanted if key not in state]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                          else "")
        raise ValueError(f"{path}: not a torchvision {name} checkpoint: missing {shown}")
    tensors = {key: _as_array(path, key, state[key], shape, name) for key, shape in wanted}
    return tensors, path
