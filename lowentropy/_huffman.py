"""Code lengths of an optimal prefix code (Huffman), capped at 32 bits.

One construction serves every format that entropy-codes ranks (``huffman`` and ``efr``):
the lengths of a format's code follow from the counts of ``Ω`` alone, so that its storage
can be priced from :func:`lowentropy.stats` without encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._jit import kernel

__all__ = ["MAX_CODE_LENGTH", "CanonicalCode", "canonical_code", "huffman_lengths"]

#: Longest code word (longer optimal codes are shortened, see :func:`huffman_lengths`).
MAX_CODE_LENGTH = 32


@kernel()
def _two_queue_depths(weights):
    """Depths of the leaves of a Huffman tree over ``weights`` (ascending).

    The two-queue construction: leaves in ascending order, merged nodes in the order they
    are made (which is ascending too). On equal weights a leaf is taken before a merged
    node, and the earlier of two leaves or two merged nodes first.
    """
    K = weights.shape[0]
    weight = np.empty(2 * K - 1, np.int64)
    parent = np.zeros(2 * K - 1, np.int64)
    weight[:K] = weights
    leaf = 0
    merged = K
    made = K
    for _ in range(K - 1):
        picked = np.empty(2, np.int64)
        for t in range(2):
            if leaf < K and (merged >= made or weight[leaf] <= weight[merged]):
                picked[t] = leaf
                leaf += 1
            else:
                picked[t] = merged
                merged += 1
        weight[made] = weight[picked[0]] + weight[picked[1]]
        parent[picked[0]] = made
        parent[picked[1]] = made
        made += 1
    depth = np.zeros(2 * K - 1, np.int64)
    for node in range(2 * K - 3, -1, -1):
        depth[node] = depth[parent[node]] + 1
    return depth[:K]


def huffman_lengths(counts) -> np.ndarray:
    """Code lengths of an optimal prefix code for ``counts`` (in rank order: decreasing).

    ``K = 1`` gives the length 0 (nothing to code); ``K = 0`` an empty array. Ties: the
    leaves enter the two-queue construction by ascending count, among equal counts by
    descending rank, and a leaf is taken before a merged node of equal weight (this gives
    the smallest longest code among the optimal ones). When the optimal code is longer
    than :data:`MAX_CODE_LENGTH` bits, its longest words are shortened to that length
    (:func:`_limited`): only then is the code not optimal.

    Examples
    --------
    >>> huffman_lengths([23, 19, 4, 2]).tolist()
    [1, 2, 3, 3]
    """
    counts = np.asarray(counts, np.int64)
    K = counts.size
    if K <= 1:
        return np.zeros(K, np.int64)
    if (np.diff(counts) > 0).any() or counts[-1] < 1:
        raise ValueError("counts must be positive and in decreasing order (the order of Ω)")
    depths = _two_queue_depths(counts[::-1].copy())[::-1].copy()
    if depths.max() <= MAX_CODE_LENGTH:
        return depths
    return _limited(depths, MAX_CODE_LENGTH)


def _limited(lengths: np.ndarray, limit: int) -> np.ndarray:
    """Lengths of a complete prefix code no longer than ``limit``, from optimal ones in
    rank order: every pair of words past the limit is moved up (JPEG's ``Adjust_BITS``,
    which keeps the Kraft sum at 1), then the lengths go back to the ranks, shortest to
    the most frequent."""
    per_length = np.bincount(lengths).tolist()
    for i in range(len(per_length) - 1, limit, -1):
        while per_length[i] > 0:
            j = i - 2
            while per_length[j] == 0:
                j -= 1
            per_length[i] -= 2
            per_length[i - 1] += 1
            per_length[j + 1] += 2
            per_length[j] -= 1
    return np.repeat(np.arange(len(per_length)), per_length)[:lengths.size].astype(np.int64)


@dataclass(frozen=True)
class CanonicalCode:
    """The canonical prefix code with given lengths: code words of a length are
    consecutive, assigned in order of (length, rank).

    Attributes
    ----------
    codes : (K,) uint64
        The code word of every rank (read most significant bit first; 0 for length 0).
    by_code : (K',) int64
        The ranks with a code word, in code order (by length, then rank).
    count, offset, first : (MAX_CODE_LENGTH + 2,) int64
        Per length: the number of code words, where they start in ``by_code``, and the
        first code word. A code word ``c`` of length ``l`` is rank
        ``by_code[offset[l] + c - first[l]]`` when ``0 <= c - first[l] < count[l]``.
    max_length : int
        The longest code word (0 when no rank has one).
    """

    codes: np.ndarray
    by_code: np.ndarray
    count: np.ndarray
    offset: np.ndarray
    first: np.ndarray
    max_length: int


def canonical_code(lengths) -> CanonicalCode:
    """The canonical code of these lengths (one construction for ``huffman`` and ``efr``).

    Examples
    --------
    >>> code = canonical_code([1, 2, 3, 3])
    >>> [format(int(c), "b") for c in code.codes]
    ['0', '10', '110', '111']
    """
    lengths = np.asarray(lengths, np.int64)
    order = np.lexsort((np.arange(lengths.size), lengths))
    by_code = order[lengths[order] > 0].astype(np.int64)
    sorted_lengths = lengths[by_code]
    count = np.bincount(sorted_lengths, minlength=MAX_CODE_LENGTH + 2).astype(np.int64)
    offset = np.concatenate(([0], np.cumsum(count)[:-1])).astype(np.int64)
    first = np.zeros(MAX_CODE_LENGTH + 2, np.int64)
    for length in range(2, MAX_CODE_LENGTH + 2):
        first[length] = (first[length - 1] + count[length - 1]) << 1
    codes = np.zeros(lengths.size, np.uint64)
    within = np.arange(by_code.size) - offset[sorted_lengths]
    codes[by_code] = (first[sorted_lengths] + within).astype(np.uint64)
    return CanonicalCode(codes, by_code, count, offset, first,
                         int(lengths.max()) if lengths.size else 0)
