"""Small networks trained by the project on the 8x8 handwritten digits, shipped with it.

The data are the UCI "Optical Recognition of Handwritten Digits" images (1797 images of
8 x 8 pixels valued 0..16, CC BY 4.0; see ``data/README.md``). The first 75 % are the
training split, the last 25 % (450 images) the test split. ``scripts/train_digits.py``
trains the networks in NumPy with a fixed seed and writes ``data/<name>.npz``.

The forward pass here is plain NumPy and runs every weighted layer through its matrix view
(:attr:`Layer.matrix`): a convolution unfolds its input (im2col) and multiplies by the
``F x (C kh kw)`` matrix. So a network whose weights were pruned or quantized
(:meth:`Layer.with_weight`) is evaluated exactly as stored; one test-set accuracy takes
about a millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from .model import Layer, Network

__all__ = [
    "EMBEDDED",
    "ARCHITECTURES",
    "Step",
    "SPLITS",
    "digits",
    "load_embedded",
    "im2col",
    "conv2d",
    "forward",
    "predict",
    "accuracy",
]

#: Name -> one line for people.
EMBEDDED = {
    "lenet-300-100": "LeNet-300-100 style MLP 64-300-100-10 trained on 8x8 digits",
    "lenet-5": "LeNet-5 style CNN (conv 6@3x3, pool, conv 16@3x3, pool, fc 120-84-10) "
               "trained on 8x8 digits",
}

#: Data splits: the first 75 % of the 1797 images train, the last 25 % test.
SPLITS = ("train", "test", "all")
_N_IMAGES = 1797
_N_TRAIN = (3 * _N_IMAGES) // 4  # 1347; the test split holds the last 450
_PIXEL_MAX = 16.0


@dataclass(frozen=True)
class Step:
    """One step of a forward pass.

    ``op`` is ``"conv"`` (``layer``, weight ``shape`` (F, C, kh, kw), ``padding``, stride 1),
    ``"fc"`` (``layer``, ``shape`` (out, in)), ``"relu"``, ``"maxpool"`` (2 x 2, stride 2)
    or ``"flatten"``.
    """

    op: str
    layer: str = ""
    shape: tuple[int, ...] = ()
    padding: int = 0


_RELU, _POOL, _FLAT = Step("relu"), Step("maxpool"), Step("flatten")

#: Name -> forward steps (input: N x 1 x 8 x 8 pixels scaled to 0..1).
ARCHITECTURES: dict[str, tuple[Step, ...]] = {
    "lenet-300-100": (
        _FLAT,
        Step("fc", "fc1", (300, 64)), _RELU,
        Step("fc", "fc2", (100, 300)), _RELU,
        Step("fc", "fc3", (10, 100)),
    ),
    "lenet-5": (
        Step("conv", "conv1", (6, 1, 3, 3), padding=1), _RELU, _POOL,   # 6 x 8 x 8 -> 4 x 4
        Step("conv", "conv2", (16, 6, 3, 3), padding=1), _RELU, _POOL,  # 16 x 4 x 4 -> 2 x 2
        _FLAT,
        Step("fc", "fc1", (120, 64)), _RELU,
        Step("fc", "fc2", (84, 120)), _RELU,
        Step("fc", "fc3", (10, 84)),
    ),
}


def _uses(steps: tuple[Step, ...]) -> dict[str, int]:
    """Output positions of each weighted step for one 8 x 8 image."""
    side, uses = 8, {}
    for step in steps:
        if step.op == "conv":
            side = side + 2 * step.padding - step.shape[2] + 1
            uses[step.layer] = side * side
        elif step.op == "maxpool":
            side //= 2
        elif step.op == "fc":
            uses[step.layer] = 1
    return uses


def _check_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"network name must be a str, got {type(name).__name__}")
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown embedded network {name!r}; valid names: "
                         f"{', '.join(ARCHITECTURES)}")
    return name


def _data_file(filename: str):
    return resources.files(__package__).joinpath("data", filename)


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    with _data_file("digits.npz").open("rb") as fh, np.load(fh, allow_pickle=False) as npz:
        images, labels = npz["images"], npz["labels"]
    if images.shape != (_N_IMAGES, 8, 8) or labels.shape != (_N_IMAGES,):
        raise ValueError(f"digits.npz is damaged: images {images.shape}, labels "
                         f"{labels.shape}")
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def digits(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 digits: ``images`` (n, 8, 8) uint8 in 0..16 and ``labels`` (n,) uint8.

    Parameters
    ----------
    split : {"test", "train", "all"}
        ``"train"``: the first 1347 images; ``"test"``: the last 450; ``"all"``: 1797.
        The arrays are read-only.

    Examples
    --------
    >>> images, labels = digits("test")
    >>> images.shape, images.dtype, int(images.max()), labels[:5].tolist()
    ((450, 8, 8), dtype('uint8'), 16, [3, 7, 3, 3, 4])
    """
    images, labels = _digits()
    if split == "train":
        return images[:_N_TRAIN], labels[:_N_TRAIN]
    if split == "test":
        return images[_N_TRAIN:], labels[_N_TRAIN:]
    if split == "all":
        return images, labels
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def load_embedded(name: str) -> Network:
    """A trained digits network with the weights shipped in ``data/<name>.npz``.

    Parameters
    ----------
    name : {"lenet-300-100", "lenet-5"}

    Returns
    -------
    Network
        float32 weights and biases, ``source="embedded:<name>"``, trained values
        (``synthetic=False``).

    Examples
    --------
    >>> net = load_embedded("lenet-5")
    >>> [(layer.name, layer.kind, layer.matrix.shape, layer.uses_per_inference)
    ...  for layer in net][:2]
    [('conv1', 'conv', (6, 9), 64), ('conv2', 'conv', (16, 54), 16)]
    """
    steps = ARCHITECTURES[_check_name(name)]
    uses = _uses(steps)
    layers = []
    with _data_file(f"{name}.npz").open("rb") as fh, np.load(fh, allow_pickle=False) as npz:
        for step in steps:
            if step.op not in ("conv", "fc"):
                continue
            weight, bias = npz[f"{step.layer}.weight"], npz[f"{step.layer}.bias"]
            if weight.shape != step.shape or bias.shape != step.shape[:1]:
                raise ValueError(f"{name}.npz is damaged: {step.layer} has shapes "
                                 f"{weight.shape} and {bias.shape}, expected {step.shape}")
            layers.append(Layer(step.layer, weight.astype(np.float32), step.op,
                                uses[step.layer], bias.astype(np.float32)))
    return Network(name, layers, source=f"embedded:{name}", description=EMBEDDED[name])


# --- forward pass -------------------------------------------------------------------------


def im2col(x: np.ndarray, kh: int, kw: int, padding: int = 0) -> np.ndarray:
    """Unfold ``x`` (N, C, H, W) into rows of ``C * kh * kw`` values, one per output
    position of a stride-1 convolution: shape ``(N * H' * W', C * kh * kw)``, rows ordered
    by image, then output row, then output column; columns ordered like a ``(C, kh, kw)``
    kernel flattened, so ``im2col(x) @ layer.matrix.T`` is the convolution.

    Examples
    --------
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> im2col(x, 2, 2)
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    n, c, h, w = x.shape
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"a {kh}x{kw} kernel does not fit a {h}x{w} input with padding "
                         f"{padding}")
    view = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    # view: (N, C, oh, ow, kh, kw) -> (N, oh, ow, C, kh, kw)
    return view.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)


def conv2d(x: np.ndarray, layer: Layer, padding: int = 0) -> np.ndarray:
    """Stride-1 convolution of ``x`` (N, C, H, W) by a conv layer, through its matrix view
    (im2col, then one matrix product with ``layer.matrix``), plus the layer's bias.

    Examples
    --------
    >>> layer = Layer("c", np.ones((2, 1, 2, 2)), "conv", uses_per_inference=4)
    >>> conv2d(np.ones((1, 1, 3, 3)), layer)[0, 0]
    array([[4., 4.],
           [4., 4.]])
    """
    f, c, kh, kw = layer.shape
    n, _, h, w = x.shape
    if x.shape[1] != c:
        raise ValueError(f"layer {layer.name!r} expects {c} input channels, got {x.shape[1]}")
    matrix = np.asarray(layer.matrix, dtype=np.float64)
    out = im2col(x, kh, kw, padding) @ matrix.T
    if layer.bias is not None:
        out += layer.bias
    oh, ow = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    return out.reshape(n, oh, ow, f).transpose(0, 3, 1, 2)


def _fc(x: np.ndarray, layer: Layer) -> np.ndarray:
    out = x @ np.asarray(layer.matrix, dtype=np.float64).T
    if layer.bias is not None:
        out += layer.bias
    return out


def _architecture(network: Network) -> tuple[Step, ...]:
    """The steps of an embedded architecture whose layers the network has (by the
    ``embedded:<name>`` source, else by layer names and shapes)."""
    if not isinstance(network, Network):
        raise TypeError(f"expected a Network, got {type(network).__name__}")
    layout = [(layer.name, layer.shape) for layer in network]
    candidates = list(ARCHITECTURES)
    tag = network.source.removeprefix("embedded:")
    if tag in ARCHITECTURES:
        candidates.insert(0, tag)
    for name in candidates:
        steps = ARCHITECTURES[name]
        if layout == [(s.layer, s.shape) for s in steps if s.layer]:
            return steps
    raise ValueError(f"network {network.name!r} is not one of the digits networks "
                     f"({', '.join(ARCHITECTURES)}): its layers {layout} match none of them")


def forward(network: Network, images: np.ndarray) -> np.ndarray:
    """Class scores (logits) of a digits network for ``images``.

    Parameters
    ----------
    network : Network
        One of the embedded digits networks, possibly with replaced (pruned, quantized)
        weights; any real dtype.
    images : array (n, 8, 8) or (n, 64)
        Pixel values 0..16 (as :func:`digits` returns them).

    Returns
    -------
    ndarray (n, 10) float64

    Examples
    --------
    >>> net = load_embedded("lenet-300-100")
    >>> images, labels = digits("test")
    >>> int(forward(net, images[:1]).argmax()), int(labels[0])
    (3, 3)
    """
    steps = _architecture(network)
    x = np.asarray(images)
    if x.ndim not in (2, 3) or x.shape[1:] not in ((8, 8), (64,)):
        raise ValueError(f"images must have shape (n, 8, 8) or (n, 64), got {x.shape}")
    x = x.reshape(len(x), 1, 8, 8).astype(np.float64) / _PIXEL_MAX
    for step in steps:
        if step.op == "conv":
            x = conv2d(x, network[step.layer], step.padding)
        elif step.op == "fc":
            x = _fc(x, network[step.layer])
        elif step.op == "relu":
            x = np.maximum(x, 0.0)
        elif step.op == "maxpool":
            x = np.maximum(np.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2]),
                           np.maximum(x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]))
        elif step.op == "flatten":
            x = x.reshape(len(x), -1)
    return x


def predict(network: Network, images: np.ndarray) -> np.ndarray:
    """Predicted digit of each image (argmax of :func:`forward`).

    Examples
    --------
    >>> predict(load_embedded("lenet-5"), digits("test")[0][:5]).tolist()
    [3, 7, 3, 3, 4]
    """
    return forward(network, images).argmax(axis=1)


def accuracy(network: Network, split: str = "test") -> float:
    """Fraction of a digits split the network classifies correctly.

    Fast enough (about a millisecond for the test split) to recompute after every change
    of a pruning or quantization setting.

    Parameters
    ----------
    network : Network
        An embedded digits network, its weights possibly replaced via
        :meth:`Layer.with_weight`.
    split : {"test", "train", "all"}

    Examples
    --------
    >>> net = load_embedded("lenet-300-100")
    >>> accuracy(net) > 0.9
    True
    >>> zeroed = Network(net.name, [net[0].with_weight(np.zeros(net[0].shape))] + net.layers[1:])
    >>> accuracy(zeroed) < 0.2
    True
    """
    images, labels = digits(split)
    return float(np.mean(predict(network, images) == labels))
