"""Train the embedded digits networks in NumPy and write their weights.

Reproducible: a fixed seed drives initialisation and batch order; training runs in float64
and the weights are stored as float32 in ``lowentropy/networks/data/<name>.npz`` (arrays
``<layer>.weight`` and ``<layer>.bias``). The test accuracies printed at the end are those
recorded in ``lowentropy/networks/data/README.md``.

Usage::

    python scripts/train_digits.py                 # all networks, into the package
    python scripts/train_digits.py --out /tmp/w    # elsewhere
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from lowentropy.networks.embedded import (
    ARCHITECTURES,
    Step,
    accuracy,
    digits,
    im2col,
    load_embedded,
)

DATA = Path(__file__).resolve().parents[1] / "lowentropy" / "networks" / "data"

#: Per network: epochs, peak Adam learning rate (cosine schedule), batch size, L2 weight
#: decay, random +-1 pixel shifts of the training images, dropout after fc ReLUs.
SETTINGS = {
    "lenet-300-100": dict(epochs=150, lr=1e-3, batch=32, decay=1e-4, shift=True, dropout=0.3),
    "lenet-5": dict(epochs=150, lr=2e-3, batch=32, decay=1e-4, shift=True, dropout=0.3),
}


def col2im(cols: np.ndarray, x_shape: tuple[int, ...], kh: int, kw: int,
           padding: int) -> np.ndarray:
    """Adjoint of ``im2col``: add each row's values back onto the input positions."""
    n, c, h, w = x_shape
    oh, ow = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    cols = cols.reshape(n, oh, ow, c, kh, kw)
    dx = np.zeros((n, c, h + 2 * padding, w + 2 * padding))
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


def forward_backward(steps: tuple[Step, ...], params: dict, x: np.ndarray, y: np.ndarray,
                     dropout: float = 0.0, rng: np.random.Generator | None = None
                     ) -> tuple[float, dict]:
    """Softmax cross-entropy loss of a batch and its gradients; with ``dropout`` > 0,
    (inverted) dropout after every ReLU of a fully connected layer."""
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
            mask = (x > 0).astype(np.float64)
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
    shifted = x - x.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -logp[np.arange(len(y)), y].mean()
    d = np.exp(logp)
    d[np.arange(len(y)), y] -= 1.0
    d /= len(y)
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
    return float(loss), grads


def train(name: str, seed: int) -> dict[str, np.ndarray]:
    """Train one network; returns ``{"<layer>.weight": ..., "<layer>.bias": ...}`` float32."""
    steps, cfg = ARCHITECTURES[name], SETTINGS[name]
    rng = np.random.default_rng(seed)
    params = {}
    for step in steps:
        if step.layer:
            fan_in = int(np.prod(step.shape[1:]))
            params[step.layer] = [rng.standard_normal(step.shape) * np.sqrt(2.0 / fan_in),
                                  np.zeros(step.shape[0])]
    moments = {k: [[np.zeros_like(p) for p in v], [np.zeros_like(p) for p in v]]
               for k, v in params.items()}
    images, labels = digits("train")
    x_all = images.reshape(-1, 1, 8, 8).astype(np.float64) / 16.0
    y_all = labels.astype(np.int64)
    beta1, beta2, eps, t = 0.9, 0.999, 1e-8, 0
    for epoch in range(cfg["epochs"]):
        order = rng.permutation(len(y_all))
        total = 0.0
        for start in range(0, len(order), cfg["batch"]):
            idx = order[start:start + cfg["batch"]]
            batch = shift(x_all[idx], rng) if cfg["shift"] else x_all[idx]
            loss, grads = forward_backward(steps, params, batch, y_all[idx], cfg["dropout"],
                                           rng)
            total += loss * len(idx)
            t += 1
            lr = cfg["lr"] * 0.5 * (1 + np.cos(np.pi * epoch / cfg["epochs"]))  # cosine
            for layer, (gw, gb) in grads.items():
                for i, g in enumerate((gw + cfg["decay"] * params[layer][0], gb)):
                    m, v = moments[layer][0][i], moments[layer][1][i]
                    m *= beta1
                    m += (1 - beta1) * g
                    v *= beta2
                    v += (1 - beta2) * g * g
                    step_size = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                    params[layer][i] -= step_size * m / (np.sqrt(v) + eps)
        if (epoch + 1) % 50 == 0:
            print(f"  {name} epoch {epoch + 1:3d}: train loss {total / len(y_all):.4f}")
    out = {}
    for layer, (w, b) in params.items():
        out[f"{layer}.weight"] = w.astype(np.float32)
        out[f"{layer}.bias"] = b.astype(np.float32)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA, help="folder for <name>.npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("networks", nargs="*", default=list(ARCHITECTURES))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.networks:
        start = time.perf_counter()
        weights = train(name, args.seed)
        np.savez_compressed(args.out / f"{name}.npz", **weights)
        print(f"{name}: trained in {time.perf_counter() - start:.1f} s -> "
              f"{args.out / f'{name}.npz'}")
    if args.out.resolve() == DATA.resolve():
        for name in args.networks:
            net = load_embedded(name)
            _, labels = digits("test")
            acc = accuracy(net, "test")
            print(f"{name}: test accuracy {round(acc * len(labels))}/{len(labels)} = "
                  f"{acc!r}; train accuracy {accuracy(net, 'train')!r}")


if __name__ == "__main__":
    main()
