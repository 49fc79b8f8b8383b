"""The paper's four ImageNet networks as exact layer catalogues.

AlexNet, VGG-16, ResNet-152 and DenseNet-121 as torchvision builds them: every convolution
and fully connected layer (batch-norm skipped) under its torchvision ``state_dict`` name,
with its weight shape and the number of output positions it computes for one 224 x 224
image. Shapes follow from a short description of each architecture (channel plan, kernel
sizes, strides, padding), not from typed-in tables.

Weights are synthetic by default: He-normal (``std = sqrt(2 / fan_in)``), float32,
deterministic per (network, layer, seed). Real torchvision weights are read from the local
torch hub cache with ``pretrained=True`` (see :mod:`lowentropy.networks.pretrained`).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import numpy as np

from .model import Layer, Network

__all__ = [
    "CATALOGUE",
    "INPUT_SIZE",
    "LayerSpec",
    "NormSpec",
    "catalogue_specs",
    "catalogue_norms",
    "catalogue_parameter_count",
    "catalogue_macs",
    "catalogue_network",
    "synthetic_weight",
]

#: Side of the square input image the catalogue's ``uses_per_inference`` are counted for.
INPUT_SIZE = 224

#: Catalogue name -> display name.
CATALOGUE = {
    "alexnet": "AlexNet",
    "vgg16": "VGG-16",
    "resnet152": "ResNet-152",
    "densenet121": "DenseNet-121",
}


@dataclass(frozen=True)
class LayerSpec:
    """Shape and use count of one weight layer, without weights.

    Parameters
    ----------
    name : str
        The weight's torchvision ``state_dict`` key (e.g. ``"features.0.weight"``).
    kind : {"conv", "fc"}
    shape : tuple of int
        ``(F, C, kh, kw)`` for a convolution, ``(out, in)`` for a fully connected layer.
    uses_per_inference : int
        Output positions for a 224 x 224 input (1 for a fully connected layer).
    has_bias : bool
        Whether the layer has a bias vector (``name`` with ``.bias`` for ``.weight``).
    stride, padding : int
        Convolution geometry (1 and 0 for a fully connected layer).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    uses_per_inference: int
    has_bias: bool
    stride: int = 1
    padding: int = 0

    @property
    def size(self) -> int:
        """Number of weights."""
        return math.prod(self.shape)

    @property
    def fan_in(self) -> int:
        """Inputs to one output: ``C * kh * kw`` or ``in``."""
        return math.prod(self.shape[1:])

    @property
    def macs_per_inference(self) -> int:
        """Multiply-accumulates of this layer in one dense forward pass."""
        return self.size * self.uses_per_inference

    @property
    def bias_name(self) -> str | None:
        """The ``state_dict`` key of the bias, or None."""
        return self.name.removesuffix(".weight") + ".bias" if self.has_bias else None


@dataclass(frozen=True)
class NormSpec:
    """A batch-norm layer: module name and channels (2 trained parameters per channel)."""

    name: str
    channels: int


# --- architecture descriptions ------------------------------------------------------------


def _out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class _Builder:
    """Collects weight layers and batch-norms while an architecture is walked."""

    def __init__(self) -> None:
        self.layers: list[LayerSpec] = []
        self.norms: list[NormSpec] = []

    def conv(self, name: str, size: int, c_in: int, c_out: int, kernel: int, stride: int = 1,
             padding: int = 0, bias: bool = False) -> int:
        """Add a convolution on a ``size x size`` input; returns the output side."""
        out = _out(size, kernel, stride, padding)
        self.layers.append(LayerSpec(f"{name}.weight", "conv", (c_out, c_in, kernel, kernel),
                                     out * out, bias, stride, padding))
        return out

    def fc(self, name: str, n_in: int, n_out: int) -> None:
        self.layers.append(LayerSpec(f"{name}.weight", "fc", (n_out, n_in), 1, True))

    def norm(self, name: str, channels: int) -> None:
        self.norms.append(NormSpec(name, channels))


def _sequential(b: _Builder, prefix: str, ops, channels: int, size: int) -> tuple[int, int]:
    """Walk a torchvision ``nn.Sequential``: each op takes one index, as in the module.

    Ops: ``("conv", out, kernel, stride, padding)``, ``("pool", kernel, stride)``,
    ``("linear", out)`` (input = channels * size * size), ``("relu",)``, ``("dropout",)``.
    Returns the channels (features) and side after the last op.
    """
    for index, (op, *args) in enumerate(ops):
        name = f"{prefix}.{index}"
        if op == "conv":
            c_out, kernel, stride, padding = args
            size = b.conv(name, size, channels, c_out, kernel, stride, padding, bias=True)
            channels = c_out
        elif op == "pool":
            size = _out(size, args[0], args[1], 0)
        elif op == "linear":
            b.fc(name, channels * size * size, args[0])
            channels, size = args[0], 1
    return channels, size


_ALEXNET_FEATURES = (
    ("conv", 64, 11, 4, 2), ("relu",), ("pool", 3, 2),
    ("conv", 192, 5, 1, 2), ("relu",), ("pool", 3, 2),
    ("conv", 384, 3, 1, 1), ("relu",),
    ("conv", 256, 3, 1, 1), ("relu",),
    ("conv", 256, 3, 1, 1), ("relu",), ("pool", 3, 2),
)
_ALEXNET_CLASSIFIER = (
    ("dropout",), ("linear", 4096), ("relu",),
    ("dropout",), ("linear", 4096), ("relu",),
    ("linear", 1000),
)
#: VGG-16 ("configuration D"): conv 3x3 widths, "M" = 2x2 max-pool.
_VGG16_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
               512, 512, 512, "M", 512, 512, 512, "M")
_VGG_CLASSIFIER = (
    ("linear", 4096), ("relu",), ("dropout",),
    ("linear", 4096), ("relu",), ("dropout",),
    ("linear", 1000),
)


def _alexnet(b: _Builder, size: int) -> None:
    channels, size = _sequential(b, "features", _ALEXNET_FEATURES, 3, size)
    _sequential(b, "classifier", _ALEXNET_CLASSIFIER, channels, 6)  # AdaptiveAvgPool2d(6)


def _vgg16(b: _Builder, size: int) -> None:
    ops = []
    for item in _VGG16_PLAN:
        ops += [("pool", 2, 2)] if item == "M" else [("conv", item, 3, 1, 1), ("relu",)]
    channels, size = _sequential(b, "features", ops, 3, size)
    _sequential(b, "classifier", _VGG_CLASSIFIER, channels, 7)  # AdaptiveAvgPool2d(7)


def _resnet152(b: _Builder, size: int) -> None:
    """Bottleneck ResNet (torchvision "v1.5": the stride sits on the 3x3 convolution)."""
    size = b.conv("conv1", size, 3, 64, 7, 2, 3)
    b.norm("bn1", 64)
    size = _out(size, 3, 2, 1)
    channels, expansion = 64, 4
    stages = zip((3, 8, 36, 3), (64, 128, 256, 512), (1, 2, 2, 2), strict=True)
    for stage, (blocks, width, first_stride) in enumerate(stages, start=1):
        for block in range(blocks):
            p = f"layer{stage}.{block}"
            stride = first_stride if block == 0 else 1
            out_channels = width * expansion
            b.conv(f"{p}.conv1", size, channels, width, 1)
            b.norm(f"{p}.bn1", width)
            new_size = b.conv(f"{p}.conv2", size, width, width, 3, stride, 1)
            b.norm(f"{p}.bn2", width)
            b.conv(f"{p}.conv3", new_size, width, out_channels, 1)
            b.norm(f"{p}.bn3", out_channels)
            if stride != 1 or channels != out_channels:
                b.conv(f"{p}.downsample.0", size, channels, out_channels, 1, stride)
                b.norm(f"{p}.downsample.1", out_channels)
            channels, size = out_channels, new_size
    b.fc("fc", channels, 1000)


def _densenet121(b: _Builder, size: int) -> None:
    """DenseNet-BC: growth 32, bottleneck 4 x 32, compression 0.5, blocks (6, 12, 24, 16)."""
    growth, bottleneck = 32, 4 * 32
    size = b.conv("features.conv0", size, 3, 64, 7, 2, 3)
    b.norm("features.norm0", 64)
    size = _out(size, 3, 2, 1)
    channels = 64
    blocks = (6, 12, 24, 16)
    for i, n_layers in enumerate(blocks, start=1):
        for j in range(1, n_layers + 1):
            p = f"features.denseblock{i}.denselayer{j}"
            b.norm(f"{p}.norm1", channels)
            b.conv(f"{p}.conv1", size, channels, bottleneck, 1)
            b.norm(f"{p}.norm2", bottleneck)
            b.conv(f"{p}.conv2", size, bottleneck, growth, 3, 1, 1)
            channels += growth
        if i < len(blocks):
            p = f"features.transition{i}"
            b.norm(f"{p}.norm", channels)
            b.conv(f"{p}.conv", size, channels, channels // 2, 1)
            channels //= 2
            size = _out(size, 2, 2, 0)
    b.norm("features.norm5", channels)
    b.fc("classifier", channels, 1000)


_ARCHITECTURES = {
    "alexnet": _alexnet,
    "vgg16": _vgg16,
    "resnet152": _resnet152,
    "densenet121": _densenet121,
}


def _check_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"network name must be a str, got {type(name).__name__}")
    if name not in _ARCHITECTURES:
        raise ValueError(f"unknown catalogue network {name!r}; valid names: "
                         f"{', '.join(_ARCHITECTURES)}")
    return name


@cache
def _build(name: str) -> _Builder:
    b = _Builder()
    _ARCHITECTURES[name](b, INPUT_SIZE)
    return b


def catalogue_specs(name: str) -> tuple[LayerSpec, ...]:
    """Every weight layer of a catalogue network, in forward order, without weights.

    Parameters
    ----------
    name : {"alexnet", "vgg16", "resnet152", "densenet121"}

    Returns
    -------
    tuple of LayerSpec
        Name, kind, shape and uses per 224 x 224 inference of each convolution and fully
        connected layer (computed once, then cached).

    Raises
    ------
    ValueError
        If ``name`` is not a catalogue network (the message lists them).

    Examples
    --------
    >>> specs = catalogue_specs("alexnet")
    >>> [(s.name, s.shape, s.uses_per_inference) for s in specs[:2]]
    [('features.0.weight', (64, 3, 11, 11), 3025), ('features.3.weight', (192, 64, 5, 5), 729)]
    >>> specs[-1].name, specs[-1].shape
    ('classifier.6.weight', (1000, 4096))
    """
    return tuple(_build(_check_name(name)).layers)


def catalogue_norms(name: str) -> tuple[NormSpec, ...]:
    """The batch-norm layers of a catalogue network (module name, channels).

    Examples
    --------
    >>> catalogue_norms("resnet152")[0]
    NormSpec(name='bn1', channels=64)
    >>> catalogue_norms("alexnet")
    ()
    """
    return tuple(_build(_check_name(name)).norms)


def catalogue_parameter_count(name: str) -> int:
    """Trainable parameters as torchvision counts them: weights, biases and the two
    affine parameters of each batch-norm channel.

    Examples
    --------
    >>> catalogue_parameter_count("alexnet")
    61100840
    """
    specs = catalogue_specs(name)
    biases = sum(s.shape[0] for s in specs if s.has_bias)
    return sum(s.size for s in specs) + biases + sum(2 * n.channels for n in catalogue_norms(name))


def catalogue_macs(name: str) -> int:
    """Multiply-accumulates of the convolution and fully connected layers for one
    224 x 224 image (batch-norm, pooling and activations not counted).

    Examples
    --------
    >>> round(catalogue_macs("vgg16") / 1e9, 2)
    15.47
    """
    return sum(s.macs_per_inference for s in catalogue_specs(name))


# --- weights ------------------------------------------------------------------------------


def _seed_words(network: str, layer: str, seed: int) -> list[int]:
    digest = hashlib.sha256(f"{network}/{layer}".encode()).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)] + [seed]


def synthetic_weight(network: str, spec: LayerSpec, seed: int = 0) -> np.ndarray:
    """The synthetic float32 weight of one layer: He-normal, ``std = sqrt(2 / fan_in)``.

    The same ``(network, layer name, seed)`` always gives the same tensor, whatever other
    layers are generated.

    Examples
    --------
    >>> spec = catalogue_specs("alexnet")[0]
    >>> w = synthetic_weight("alexnet", spec)
    >>> w.shape, w.dtype, bool((w == synthetic_weight("alexnet", spec)).all())
    ((64, 3, 11, 11), dtype('float32'), True)
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    rng = np.random.default_rng(_seed_words(network, spec.name, int(seed)))
    weight = rng.standard_normal(spec.shape, dtype=np.float32)
    weight *= np.float32(math.sqrt(2.0 / spec.fan_in))
    return weight


def _select(name: str, specs: tuple[LayerSpec, ...], layers) -> tuple[LayerSpec, ...]:
    """The specs named in ``layers`` (weight keys, with or without ``.weight``), in
    catalogue order."""
    if layers is None:
        return specs
    if isinstance(layers, str):
        layers = [layers]
    wanted = set()
    known = {s.name for s in specs}
    for key in layers:
        if not isinstance(key, str):
            raise TypeError(f"layer names must be str, got {type(key).__name__}")
        full = key if key in known else f"{key}.weight"
        if full not in known:
            raise ValueError(f"{name} has no weight layer {key!r}; layers are named like "
                             f"{specs[0].name!r} ... {specs[-1].name!r} "
                             f"(see catalogue_specs({name!r}))")
        wanted.add(full)
    if not wanted:
        raise ValueError("layers is empty; give at least one layer name or None for all")
    return tuple(s for s in specs if s.name in wanted)


def catalogue_network(name: str, *, layers: Iterable[str] | str | None = None, seed: int = 0,
                      pretrained: bool = False,
                      checkpoint: str | os.PathLike | None = None) -> Network:
    """One of the paper's networks as a :class:`Network` of its conv and fc layers.

    Parameters
    ----------
    name : {"alexnet", "vgg16", "resnet152", "densenet121"}
    layers : str or iterable of str, optional
        Only these layers (``state_dict`` weight keys, with or without the ``.weight``
        suffix), kept in catalogue order; by default all. Loading one layer of a large
        network generates (or reads) only that layer.
    seed : int, default 0
        Seed of the synthetic weights.
    pretrained : bool, default False
        Read torchvision's trained weights from the local torch hub cache
        (``$TORCH_HOME/hub/checkpoints``) instead of generating synthetic ones. Needs
        ``torch``; nothing is ever downloaded.
    checkpoint : str or os.PathLike, optional
        Read trained weights from this ``state_dict`` file instead (implies
        ``pretrained``).

    Returns
    -------
    Network
        Layers named by their torchvision weight keys, with ``uses_per_inference`` for a
        224 x 224 input, biases where the layer has one (zeros when synthetic), and
        ``synthetic=True`` unless trained weights were read.

    Raises
    ------
    ValueError
        If the name or a layer name is unknown, or a checkpoint does not match the
        catalogue (missing key, wrong shape).
    FileNotFoundError
        If ``pretrained=True`` and the checkpoint file is not in the hub cache.
    ImportError
        If trained weights are asked for and ``torch`` is not installed.

    Examples
    --------
    >>> net = catalogue_network("vgg16", layers=["features.0", "classifier.6.weight"])
    >>> net
    Network('vgg16', 2 layers, 4,097,728 weights, synthetic)
    >>> [(layer.name, layer.uses_per_inference) for layer in net]
    [('features.0.weight', 50176), ('classifier.6.weight', 1)]
    >>> net.description
    'VGG-16 layer catalogue (torchvision architecture), synthetic weights (He-normal, seed 0)'
    """
    specs = _select(name, catalogue_specs(name), layers)
    display = CATALOGUE[name]
    if pretrained or checkpoint is not None:
        from .pretrained import read_pretrained

        tensors, path = read_pretrained(name, specs, checkpoint)
        built = [Layer(s.name, tensors[s.name], s.kind, s.uses_per_inference,
                       tensors[s.bias_name] if s.has_bias else None, synthetic=False)
                 for s in specs]
        return Network(name, built, source=f"embedded:{name}",
                       description=f"{display} (torchvision architecture), trained "
                                   f"torchvision weights from {path}")
    built = [Layer(s.name, synthetic_weight(name, s, seed), s.kind, s.uses_per_inference,
                   np.zeros(s.shape[0], np.float32) if s.has_bias else None, synthetic=True)
             for s in specs]
    return Network(name, built, source=f"embedded:{name}",
                   description=f"{display} layer catalogue (torchvision architecture), "
                               f"synthetic weights (He-normal, seed {seed})")
