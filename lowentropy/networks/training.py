"""Training the digits networks in NumPy, and Deep Compression's retraining (SPEC §10).

- :func:`train`: trains an embedded digits network from scratch (what
  ``scripts/train_digits.py`` runs to make ``data/<name>.npz``);
- :func:`retrain`: prunes gradually with masked fine-tuning, quantizes, then fine-tunes the
  shared values, as Deep Compression does (Han, Mao & Dally, ICLR 2016), for a
  :class:`lowentropy.Recipe` with ``retrain=True``.

Everything runs in float64 on the CPU, deterministically for a given seed: the seed drives
the batch order, the pixel shifts and dropout.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .embedded import ARCHITECTURES, EMBEDDED, Step, _architecture, digits, im2col
from .model import Layer, Network

__all__ = ["Cancelled", "has_training_data", "Schedule", "SCHEDULES", "SETTINGS",
           "VALIDATION", "col2im", "shift", "forward_backward", "train", "retrain",
           "training_steps", "training_split"]

#: Per network: epochs, peak Adam learning rate (cosine schedule), batch size, L2 weight
#: decay, random +-1 pixel shifts of the training images, dropout after fc ReLUs.
SETTINGS = {
    "lenet-300-100": dict(epochs=150, lr=1e-3, batch=32, decay=1e-4, shift=True, dropout=0.3),
    "lenet-5": dict(epochs=150, lr=2e-3, batch=32, decay=1e-4, shift=True, dropout=0.3),
}

#: Training images held out for validation when retraining and choosing rates: the last
#: ones of the training split (never the test split).
VALIDATION = 270

_PIXEL_MAX = 16.0

#: Retraining runs in float32 (training from scratch in float64): about twice as fast, and
#: the weights are float32 in the end anyway.
_DTYPE = np.float32


class Cancelled(Exception):
    """Raised when a ``cancelled()`` callable answered true between two epochs."""


def col2im(cols: np.ndarray, x_shape: tuple[int, ...], kh: int, kw: int,
           padding: int) -> np.ndarray:
    """Adjoint of ``im2col``: add each row's values back onto the input positions."""
    n, c, h, w = x_shape
    oh, ow = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    cols = cols.reshape(n, oh, ow, c, kh, kw)
    dx = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + oh, j:j + ow] += cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dx[:, :, padding:padding + h, padding:padding + w]


def shift(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by -1, 0 or +1 pixel in each direction (zeros shifted in)."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    dy, dx = rng.integers(0, 3, size=(2, len(x)))
    rows = dy[:, None] + np.arange(8)[None, :]          # (n, 8)
    cols = dx[:, None] + np.arange(8)[None, :]
    n = np.arange(len(x))[:, None, None]
    return padded[n, 0, rows[:, :, None], cols[:, None, :]][:, None]


def _forward(steps: tuple[Step, ...], params: dict, x: np.ndarray, dropout: float,
             rng: np.random.Generator | None) -> tuple[np.ndarray, list]:
    caches, last = [], ""
    for step in steps:
        last = step.op if step.op in ("conv", "fc") else last
        if step.op == "conv":
            w, b = params[step.layer]
            f, c, kh, kw = step.shape
            cols = im2col(x, kh, kw, step.padding)
            n, _, h, wd = x.shape
            oh, ow = h + 2 * step.padding - kh + 1, wd + 2 * step.padding - kw + 1
            caches.append((cols, x.shape))
            x = (cols @ w.reshape(f, -1).T + b).reshape(n, oh, ow, f).transpose(0, 3, 1, 2)
        elif step.op == "fc":
            w, b = params[step.layer]
            caches.append(x)
            x = x @ w.T + b
        elif step.op == "relu":
            mask = (x > 0).astype(x.dtype)
            if dropout and last == "fc":
                mask *= (rng.random(x.shape) >= dropout) / (1.0 - dropout)
            caches.append(mask)
            x = x * mask
        elif step.op == "maxpool":
            n, c, h, wd = x.shape
            blocks = x.reshape(n, c, h // 2, 2, wd // 2, 2)
            out = blocks.max(axis=(3, 5))
            caches.append(blocks == out[:, :, :, None, :, None])
            x = out
        elif step.op == "flatten":
            caches.append(x.shape)
            x = x.reshape(len(x), -1)
    return x, caches


def _backward(steps: tuple[Step, ...], params: dict, caches: list, d: np.ndarray) -> dict:
    grads = {}
    for step, cache in zip(reversed(steps), reversed(caches), strict=True):
        if step.op == "conv":
            w, _ = params[step.layer]
            cols, x_shape = cache
            f, c, kh, kw = step.shape
            d2 = d.transpose(0, 2, 3, 1).reshape(-1, f)
            grads[step.layer] = ((d2.T @ cols).reshape(step.shape), d2.sum(axis=0))
            d = col2im(d2 @ w.reshape(f, -1), x_shape, kh, kw, step.padding)
        elif step.op == "fc":
            w, _ = params[step.layer]
            grads[step.layer] = (d.T @ cache, d.sum(axis=0))
            d = d @ w
        elif step.op == "relu":
            d = d * cache
        elif step.op == "maxpool":
            d = (cache * d[:, :, :, None, :, None]).reshape(cache.shape[0], cache.shape[1],
                                                           cache.shape[2] * 2, -1)
        elif step.op == "flatten":
            d = d.reshape(cache)
    return grads


def forward_backward(steps: tuple[Step, ...], params: dict, x: np.ndarray, y: np.ndarray,
                     dropout: float = 0.0, rng: np.random.Generator | None = None
                     ) -> tuple[float, dict]:
    """Softmax cross-entropy loss of a batch and its gradients; with ``dropout`` > 0,
    (inverted) dropout after every ReLU of a fully connected layer.

    ``params`` maps layer names to ``[weight, bias]`` (float64); the gradients come as
    ``{layer: (d weight, d bias)}``.
    """
    x, caches = _forward(steps, params, x, dropout, rng)
    shifted = x - x.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -logp[np.arange(len(y)), y].mean()
    d = np.exp(logp)
    d[np.arange(len(y)), y] -= 1.0
    d /= len(y)
    return float(loss), _backward(steps, params, caches, d)


class _Adam:
    """Adam over a list of arrays, updated in place."""

    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.m = [np.zeros_like(a) for a in arrays]
        self.v = [np.zeros_like(a) for a in arrays]
        self.t = 0

    def step(self, arrays: list[np.ndarray], grads: list[np.ndarray], lr: float) -> None:
        self.t += 1
        t = self.t
        for p, g, m, v in zip(arrays, grads, self.m, self.v, strict=True):
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            step_size = lr * np.sqrt(1 - self.beta2 ** t) / (1 - self.beta1 ** t)
            p -= step_size * m / (np.sqrt(v) + self.eps)


def _images(images: np.ndarray, dtype=np.float64) -> np.ndarray:
    return (images.reshape(-1, 1, 8, 8).astype(np.float64) / _PIXEL_MAX).astype(dtype)


def train(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Train one embedded digits network from scratch on the training split, with the
    settings of :data:`SETTINGS`; returns ``{"<layer>.weight": ..., "<layer>.bias": ...}``
    as float32 (what ``data/<name>.npz`` holds)."""
    steps, cfg = ARCHITECTURES[name], SETTINGS[name]
    rng = np.random.default_rng(seed)
    params = {}
    for step in steps:
        if step.layer:
            fan_in = int(np.prod(step.shape[1:]))
            params[step.layer] = [rng.standard_normal(step.shape) * np.sqrt(2.0 / fan_in),
                                  np.zeros(step.shape[0])]
    adam = {k: _Adam(v) for k, v in params.items()}
    images, labels = digits("train")
    x_all, y_all = _images(images), labels.astype(np.int64)
    for epoch in range(cfg["epochs"]):
        order = rng.permutation(len(y_all))
        total = 0.0
        for start in range(0, len(order), cfg["batch"]):
            idx = order[start:start + cfg["batch"]]
            batch = shift(x_all[idx], rng) if cfg["shift"] else x_all[idx]
            loss, grads = forward_backward(steps, params, batch, y_all[idx], cfg["dropout"],
                                           rng)
            total += loss * len(idx)
            lr = cfg["lr"] * 0.5 * (1 + np.cos(np.pi * epoch / cfg["epochs"]))  # cosine
            for layer, (gw, gb) in grads.items():
                adam[layer].step(params[layer], [gw + cfg["decay"] * params[layer][0], gb], lr)
        if (epoch + 1) % 50 == 0:
            print(f"  {name} epoch {epoch + 1:3d}: train loss {total / len(y_all):.4f}")
    out = {}
    for layer, (w, b) in params.items():
        out[f"{layer}.weight"] = w.astype(np.float32)
        out[f"{layer}.bias"] = b.astype(np.float32)
    return out


# --- Deep Compression: retraining a pruned and quantized network ------------------------------

@dataclass(frozen=True)
class Schedule:
    """How :func:`retrain` spends its epochs.

    Attributes
    ----------
    prune_steps : int
        Pruning steps towards the target: step ``s`` of ``S`` prunes
        ``target * (1 - (1 - s/S)**3)`` (gradual pruning, fast first, gentle last), each
        followed by ``epochs_per_step`` epochs of masked fine-tuning.
    epochs_per_step, final_epochs : int
        Masked fine-tuning after each step, and once more after the last one.
    shared_epochs : int
        Fine-tuning of the shared values after quantization.
    lr, shared_lr : float
        Peak Adam learning rates of the masked and of the shared-value fine-tuning (cosine
        decay within each phase).
    batch : int
    shift : bool
        Random ±1-pixel shifts of the training images.
    dropout : float
        Dropout after the ReLUs of fully connected layers.
    decay : float
        L2 weight decay of the masked fine-tuning.
    holdout : bool
        Train on the training split without its validation images (to choose a schedule
        on them, see :func:`training_split`); by default on the whole training split.
    """

    prune_steps: int = 4
    epochs_per_step: int = 6
    final_epochs: int = 12
    shared_epochs: int = 10
    lr: float = 1e-3
    shared_lr: float = 3e-4
    batch: int = 32
    shift: bool = True
    dropout: float = 0.0
    decay: float = 0.0
    holdout: bool = False

    @property
    def epochs(self) -> int:
        return self.prune_steps * self.epochs_per_step + self.final_epochs + self.shared_epochs


#: The default schedule of each embedded network (90 epochs; chosen on the validation
#: images with ``holdout=True``, see ``benchmarks/retrain.py``).
SCHEDULES = {
    "lenet-300-100": Schedule(prune_steps=4, epochs_per_step=10, final_epochs=30,
                              shared_epochs=20, lr=5e-3, shared_lr=1e-3, dropout=0.2),
    "lenet-5": Schedule(prune_steps=4, epochs_per_step=10, final_epochs=30, shared_epochs=20,
                        lr=5e-3, shared_lr=1e-3, dropout=0.3, decay=1e-4),
}


def training_steps(network: Network) -> tuple[Step, ...]:
    """The forward steps of a network that carries training data (the embedded digits
    networks); ValueError for any other network."""
    try:
        return _architecture(network)
    except ValueError:
        raise ValueError(
            f"retraining needs the network's training data, and network {network.name!r} "
            f"has none: only the embedded digits networks ({', '.join(EMBEDDED)}) carry "
            "theirs; use retrain=False for this network") from None


def training_split(part: str) -> tuple[np.ndarray, np.ndarray]:
    """The training images and labels as retraining splits them: ``"fit"`` (what the
    weights are trained on) or ``"validation"`` (the last :data:`VALIDATION` images of
    the training split, held out to choose settings). The test split is never used."""
    images, labels = digits("train")
    if part == "fit":
        return images[:-VALIDATION], labels[:-VALIDATION]
    if part == "validation":
        return images[-VALIDATION:], labels[-VALIDATION:]
    raise ValueError(f"part must be 'fit' or 'validation', got {part!r}")


class _Shared:
    """The shared values of one quantized layer: a codebook (k-means: one value per
    cluster) or one step (uniform: ``step * code``), with the positions fixed."""

    def __init__(self, W: np.ndarray, mask: np.ndarray, recipe) -> None:
        self.mask = mask
        values, self.index = np.unique(W[mask], return_inverse=True)
        self.uniform = recipe.method == "uniform"
        if self.uniform:
            top = float(np.max(np.abs(values))) if values.size else 0.0
            step = top / (2 ** (recipe.bits - 1) - 1) or 1.0  # quantize's step
            self.codes = np.rint(W[mask] / step)  # integers in [-L, L]; value = step * code
            self.params = [np.array([step])]
        else:
            self.params = [values.astype(np.float64)]

    def weights(self) -> np.ndarray:
        out = np.zeros(self.mask.shape, _DTYPE)
        if self.uniform:
            out[self.mask] = self.params[0][0] * self.codes
        else:
            out[self.mask] = self.params[0][self.index]
        return out

    def grads(self, gw: np.ndarray) -> list[np.ndarray]:
        """One gradient per shared value: the sum over its positions."""
        g = gw[self.mask]
        if self.uniform:
            return [np.array([np.dot(g, self.codes)])]
        return [np.bincount(self.index, weights=g, minlength=self.params[0].size)]

    def keep_nonzero(self, dtype) -> None:
        """No shared value may round to 0 in ``dtype`` (the zero pattern is kept)."""
        tiny = float(np.finfo(dtype).smallest_normal)
        p = self.params[0]
        small = np.abs(p) < tiny
        p[small] = np.where(p[small] < 0, -tiny, tiny)


def _cosine(lr: float, epoch: int, epochs: int) -> float:
    return lr * 0.5 * (1 + math.cos(math.pi * epoch / max(epochs, 1)))


class _Run:
    """One retraining: the parameters, the data, the random stream and the clock."""

    def __init__(self, network: Network, steps, recipe, schedule: Schedule, progress,
                 cancelled) -> None:
        self.network, self.steps, self.recipe, self.schedule = network, steps, recipe, schedule
        self.params = {la.name: [np.array(la.weight, dtype=_DTYPE),
                                 np.zeros(la.shape[0], _DTYPE) if la.bias is None
                                 else np.array(la.bias, dtype=_DTYPE)]
                       for la in network.layers}
        images, labels = training_split("fit") if schedule.holdout else digits("train")
        self.x, self.y = _images(images, _DTYPE), labels.astype(np.int64)
        self.rng = np.random.default_rng(recipe.seed)
        self.progress, self.cancelled = progress, cancelled
        self.done = 0
        self.final_masks: dict[str, np.ndarray] = {}
        self.total = schedule.epochs - (schedule.shared_epochs if recipe.method is None else 0)

    def epoch(self, update: Callable[[dict], None]) -> None:
        """One pass over the data in a seeded order; ``update(grads)`` per batch."""
        stop = self.cancelled
        if stop is not None and (stop.is_set() if hasattr(stop, "is_set") else stop()):
            raise Cancelled(f"retraining of {self.network.name!r} cancelled after "
                            f"{self.done} of {self.total} epochs")
        s = self.schedule
        order = self.rng.permutation(len(self.y))
        for start in range(0, len(order), s.batch):
            idx = order[start:start + s.batch]
            batch = shift(self.x[idx], self.rng) if s.shift else self.x[idx]
            _, grads = forward_backward(self.steps, self.params, batch, self.y[idx],
                                        s.dropout, self.rng)
            update(grads)
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)

    def masks(self, share: float) -> dict[str, np.ndarray]:
        """Magnitude masks at ``share`` of each layer's target fraction."""
        from ..compress import prune, prune_global

        names = self.network.names
        weights = [self.params[n][0] for n in names]
        if self.recipe.global_prune:
            pruned = prune_global(weights, self.recipe.fraction() * share)
        else:
            pruned = [prune(w, self.recipe.fraction(n) * share) for n, w in
                      zip(names, weights, strict=True)]
        return {n: p != 0 for n, p in zip(names, pruned, strict=True)}

    def masked_phase(self, masks: dict, epochs: int) -> None:
        adam = {n: _Adam(p) for n, p in self.params.items()}
        for n, (w, _) in self.params.items():
            w *= masks[n]
        for e in range(epochs):
            lr = _cosine(self.schedule.lr, e, epochs)

            def update(grads, lr=lr):
                for n, (gw, gb) in grads.items():
                    w = self.params[n][0]
                    g = gw + self.schedule.decay * w if self.schedule.decay else gw
                    adam[n].step(self.params[n], [g * masks[n], gb], lr)
                    self.params[n][0] *= masks[n]

            self.epoch(update)

    def shared_phase(self, masks: dict, epochs: int) -> None:
        shared = {n: _Shared(self.params[n][0], masks[n], self.recipe)
                  for n in self.params}
        adam = {n: _Adam([*shared[n].params, self.params[n][1]]) for n in self.params}
        for n in self.params:
            self.params[n][0] = shared[n].weights()
        for e in range(epochs):
            lr = _cosine(self.schedule.shared_lr, e, epochs)

            def update(grads, lr=lr):
                for n, (gw, gb) in grads.items():
                    adam[n].step([*shared[n].params, self.params[n][1]],
                                 [*shared[n].grads(gw), gb], lr)
                    self.params[n][0] = shared[n].weights()

            self.epoch(update)
        for n, layer in zip(self.params, self.network.layers, strict=True):
            shared[n].keep_nonzero(layer.weight.dtype)
            self.params[n][0] = shared[n].weights()


def _run(network: Network, steps, recipe, schedule: Schedule, progress, cancelled) -> _Run:
    run = _Run(network, steps, recipe, schedule, progress, cancelled)
    for s in range(1, schedule.prune_steps + 1):
        share = 1 - (1 - s / schedule.prune_steps) ** 3
        run.masked_phase(run.masks(share), schedule.epochs_per_step)
    masks = run.masks(1.0)
    run.masked_phase(masks, schedule.final_epochs)
    if recipe.method is not None:
        for n in run.params:
            run.params[n][0] = recipe.quantize(run.params[n][0] * masks[n])
        run.shared_phase(masks, schedule.shared_epochs)
    run.final_masks = masks
    return run


def _one_blas_thread():
    """BLAS on one thread: the products of small batches are far faster so on a busy
    machine (threads that wait for each other cost more than the work), and the results
    do not depend on the thread count."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is optional
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def has_training_data(network: Network) -> bool:
    """Whether ``network`` is one of the digits networks, whose training images come with
    the package (what :func:`retrain` and :func:`lowentropy.choose_rates` need).

    Examples
    --------
    >>> import numpy as np, lowentropy as le
    >>> has_training_data(le.load_network("lenet-5"))
    True
    >>> has_training_data(le.Network("x", [le.Layer("fc", np.ones((2, 3), np.float32))]))
    False
    """
    try:
        _architecture(network)
    except ValueError:
        return False
    return True


def retrain(network: Network, recipe, *, schedule: Schedule | None = None,
            progress: Callable[[int, int], object] | None = None,
            cancelled: Callable[[], bool] | threading.Event | None = None) -> Network:
    """Deep Compression's pipeline for a :class:`lowentropy.Recipe`.

    1. Gradual magnitude pruning towards the recipe's fractions (per layer, per named
       layer or one global threshold), with masked fine-tuning after every step: the
       pruned weights stay exactly 0.
    2. Quantization of the surviving weights as the recipe says (k-means or uniform).
    3. Fine-tuning of the shared values: one gradient per value, the sum of the weight
       gradients over its positions (uniform: of the one step), so the zero pattern and
       the number of values per layer (at most the recipe's) stay as they are.

    The biases are fine-tuned throughout. Training uses the training split without its
    last :data:`VALIDATION` images (see :func:`training_split`); the test split is never
    seen. The result depends only on the network, the recipe (its ``seed`` included) and
    the schedule.

    Parameters
    ----------
    network : Network
        An embedded digits network (the networks that carry training data).
    recipe : Recipe
    schedule : Schedule, optional
        Default: :data:`SCHEDULES` of the network.
    progress : callable, optional
        ``progress(done, total)`` after each epoch.
    cancelled : callable or threading.Event, optional
        Checked before each epoch; when it returns true (or the event is set),
        :class:`Cancelled` is raised.

    Returns
    -------
    Network
        The same layers, with retrained weights (their dtype kept) and biases.

    Raises
    ------
    ValueError
        A network without training data; a prune mapping naming unknown layers.
    Cancelled
        When ``cancelled()`` said so.
    """
    steps = training_steps(network)
    recipe.check_network(network)
    tag = network.source.removeprefix("embedded:")
    schedule = schedule or SCHEDULES.get(tag, SCHEDULES.get(network.name, Schedule()))
    with _one_blas_thread():
        run = _run(network, steps, recipe, schedule, progress, cancelled)
    masks = run.final_masks
    layers = []
    for layer in network.layers:
        w, b = run.params[layer.name]
        bias = b.astype(layer.bias.dtype if layer.bias is not None else np.float32)
        layers.append(Layer(layer.name, (w * masks[layer.name]).astype(layer.weight.dtype),
                            layer.kind, layer.uses_per_inference, bias, layer.synthetic))
    return Network(network.name, layers, network.source, network.description)
