"""Magnitude pruning (SPEC §6): the smallest magnitudes of a tensor, or of a whole network
under one global threshold, set to exactly 0 (the selection itself is in :mod:`._select`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..networks.model import Network
from ..threads import threads_for
from ._common import as_fraction, as_weights, raise_nonfinite
from ._select import NonFinite, prune_flat

__all__ = ["prune", "prune_global"]


def _n_pruned(n: int, fraction: float) -> int:
    return min(n, max(0, round(fraction * n)))


# --- public -------------------------------------------------------------------------------

def prune(W, fraction: float) -> np.ndarray:
    """Magnitude pruning: set the ``round(fraction * W.size)`` smallest ``|w|`` to 0.

    Parameters
    ----------
    W : array_like
        Weights of any shape (a matrix, a convolution kernel ``(F, C, kh, kw)``, …).
        float32 and float64 are kept; other real dtypes are converted first (float16,
        bool and integers of at most 16 bits to float32, wider integers to float64).
    fraction : float
        Share of the entries to prune, in ``[0, 1]``. The number pruned is
        ``round(fraction * W.size)`` (Python's ``round``: halves to even).

    Returns
    -------
    ndarray
        A new array, same shape and (converted) dtype. Exactly that many entries are 0
        (``+0.0``), the others are unchanged, except that ``-0.0`` becomes ``+0.0``.

    Notes
    -----
    **Tie rule.** Entries are pruned in the order of ``(|w|, flat index)``: among equal
    magnitudes (``w`` and ``-w``, or repeated values), the one with the lower flat index in
    C order is pruned first. The result is what a stable ``argsort`` of ``|W|.ravel()``
    would give, but found without sorting: sampling, counting and histogram passes over
    the float bit patterns (described in ``lowentropy.compress._select``), in time linear
    in ``W.size``.

    Raises
    ------
    ValueError
        If ``fraction`` is outside ``[0, 1]``, or ``W`` holds NaN or infinite values.
    TypeError
        If ``W`` is not real-valued or ``fraction`` not a real number.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.array([[0.5, -0.1, 0.3], [-0.3, 0.2, 0.1]], dtype=np.float32)
    >>> prune(W, 0.5)        # 3 of 6 entries; |-0.1| and |0.1| tie, then 0.2
    array([[ 0.5,  0. ,  0.3],
           [-0.3,  0. ,  0. ]], dtype=float32)
    >>> prune(W, 1 / 3)      # 2 entries: the two of magnitude 0.1
    array([[ 0.5,  0. ,  0.3],
           [-0.3,  0.2,  0. ]], dtype=float32)
    """
    fraction = as_fraction(fraction)
    arr = as_weights(W)
    if arr.size == 0:
        return arr.copy()
    flat = arr.reshape(-1)
    try:
        with threads_for(flat.size):
            (out,) = prune_flat([flat], _n_pruned(flat.size, fraction))
    except NonFinite:
        raise_nonfinite(arr)
    return out.reshape(arr.shape)


def prune_global(weights, fraction: float):
    """Magnitude pruning of many tensors with one global threshold.

    The tensors are pruned as if concatenated (each flattened in C order, in the given
    order) and passed to :func:`prune`: ``round(fraction * total size)`` entries become 0
    in all, the smallest magnitudes over the whole set; ties go to the earlier tensor,
    then to the lower flat index.

    Parameters
    ----------
    weights : dict of str to array_like, list or tuple of array_like, or Network
        The tensors, any shapes. When their dtypes differ, magnitudes are compared in
        float64 (exactly); each result keeps its own (converted) dtype.
    fraction : float
        Share of all entries to prune, in ``[0, 1]``.

    Returns
    -------
    dict, list, tuple or Network
        The same kind of container with pruned copies (a ``Network`` gets the same layers
        with pruned weights; a mapping comes back as a ``dict`` in the same order).

    Examples
    --------
    >>> import numpy as np
    >>> layers = {"fc1": np.array([[1.0, -4.0]]), "fc2": np.array([[2.0, 3.0, -1.0]])}
    >>> pruned = prune_global(layers, 0.4)   # 2 of 5: the two entries of magnitude 1
    >>> pruned["fc1"], pruned["fc2"]
    (array([[ 0., -4.]]), array([[2., 3., 0.]]))
    """
    fraction = as_fraction(fraction)
    if isinstance(weights, Network):
        labels = [f"layer {layer.name!r}" for layer in weights.layers]
        values = [layer.weight for layer in weights.layers]
    elif isinstance(weights, Mapping):
        labels = [f"weights[{name!r}]" for name in weights]
        values = list(weights.values())
    elif isinstance(weights, Sequence) and not isinstance(weights, (str, bytes)):
        labels = [f"weights[{i}]" for i in range(len(weights))]
        values = list(weights)
    else:
        raise TypeError("weights must be a dict of arrays, a list or tuple of arrays or a "
                        f"Network; got {type(weights).__name__}")
    arrays = [as_weights(w, name=label) for w, label in zip(values, labels, strict=True)]
    pruned = _prune_many(arrays, labels, fraction)
    if isinstance(weights, Network):
        layers = [layer.with_weight(w) for layer, w in zip(weights.layers, pruned, strict=True)]
        return Network(weights.name, layers, weights.source, weights.description)
    if isinstance(weights, Mapping):
        return dict(zip(weights, pruned, strict=True))
    return tuple(pruned) if isinstance(weights, tuple) else pruned


def _prune_many(arrays: list[np.ndarray], labels: list[str],
                fraction: float) -> list[np.ndarray]:
    nonempty = [i for i, a in enumerate(arrays) if a.size]
    if not nonempty:
        return [a.copy() for a in arrays]
    common = np.result_type(*[arrays[i].dtype for i in nonempty])
    flats = [arrays[i].reshape(-1).astype(common, copy=False) for i in nonempty]
    n = sum(f.size for f in flats)
    try:
        with threads_for(n):
            outs = prune_flat(flats, _n_pruned(n, fraction))
    except NonFinite as err:
        i = nonempty[err.index]
        raise_nonfinite(arrays[i], labels[i])
    result = [a.copy() for a in arrays]
    for i, out in zip(nonempty, outs, strict=True):
        result[i] = out.reshape(arrays[i].shape).astype(arrays[i].dtype, copy=False)
    return result
