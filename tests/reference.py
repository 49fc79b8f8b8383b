"""Naive reference implementations, written straight from ``/work/shared/SPEC.md``.

Nothing here imports ``lowentropy``: every function re-derives what the SPEC says with
plain Python loops (or the most obvious numpy call), so that a test comparing the library
against these functions compares two independent readings of the SPEC.

- :func:`as_matrix` — SPEC §1 conversions (``-0.0`` becomes ``+0.0``).
- :func:`ref_omega_counts`, :func:`ref_entropy`, :func:`ref_stats` — SPEC §1.
- :func:`ref_dense`, :func:`ref_csr`, :func:`ref_cer`, :func:`ref_cser` — SPEC §2 arrays.
- :func:`ref_palette`, :func:`ref_huffman` (with :func:`ref_code_width`,
  :func:`ref_huffman_lengths`, :func:`ref_optimal_cost`) — SPEC §9 arrays.
- :func:`ref_dot`, :func:`tolerance` — SPEC §3.
- :func:`ref_storage` — SPEC §4.
- :func:`ref_op_counts` — SPEC §5 table.
- :func:`ref_capped_lengths`, :func:`ref_efr`, :func:`ref_efr_decode` — the EFR format
  (SPEC §9, ``lowentropy/formats/efr.py``): bit strings built and parsed character by
  character.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

__all__ = [
    "SPEC_ARRAYS", "VALUE_ARRAYS", "as_matrix", "canonical_dtype", "ref_omega_counts",
    "ref_entropy", "ref_stats", "ref_dense", "ref_csr", "ref_cer", "ref_cser", "ref_arrays",
    "ref_dot", "tolerance", "index_width", "ref_storage", "ref_op_counts", "ref_palette",
    "ref_huffman", "ref_code_width", "ref_huffman_lengths", "ref_optimal_cost", "ref_efr",
    "ref_efr_decode", "ref_capped_lengths",
]

# SPEC §2: the arrays of every format, in the order ``arrays()`` returns them.
SPEC_ARRAYS: dict[str, tuple[str, ...]] = {
    "dense": ("values",),
    "csr": ("values", "col_idx", "row_ptr"),
    "cer": ("omega", "col_idx", "omega_ptr", "row_ptr"),
    "cser": ("omega", "col_idx", "omega_idx", "omega_ptr", "row_ptr"),
    "palette": ("omega", "codes"),
    "huffman": ("omega", "lengths", "bits", "row_ptr"),
    "efr": ("omega", "lengths", "bits", "row_ptr"),
}

# Arrays that hold matrix values (stored with ``value_bits``); the others are integers.
VALUE_ARRAYS = frozenset({"values", "omega"})

_TO_FLOAT32 = {np.dtype(t) for t in (np.bool_, np.int8, np.uint8, np.int16, np.uint16,
                                     np.float16)}


# --- SPEC §1 -------------------------------------------------------------------------------

def canonical_dtype(dtype) -> np.dtype:
    """The dtype a weight matrix is stored in: float32/float64 kept; float16, bool and
    integers of at most 16 bits to float32 (exact); wider integers to float64."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize in (4, 8):
        return np.dtype(f"f{dtype.itemsize}")  # native byte order
    if dtype in _TO_FLOAT32:
        return np.dtype(np.float32)
    if dtype.kind in "iuf":  # wider integers; long double (rounded)
        return np.dtype(np.float64)
    raise TypeError(f"not a real dtype: {dtype}")


def as_matrix(W) -> np.ndarray:
    """``W`` as a C-ordered float32/float64 matrix, ``-0.0`` replaced by ``+0.0``."""
    W = np.asarray(W)
    dtype = canonical_dtype(W.dtype)
    W = np.array(W, dtype=dtype, order="C")
    return W + dtype.type(0.0)  # -0.0 + 0.0 == +0.0; every other value unchanged


def ref_omega_counts(W) -> tuple[np.ndarray, np.ndarray]:
    """``Ω`` (decreasing count, ties by ascending value, ``-0.0`` counted as ``0.0``) and
    the count of each value, with a dict and ``sorted``."""
    W = as_matrix(W)
    counts: dict[float, int] = {}
    for v in W.ravel().tolist():
        v = v + 0.0
        counts[v] = counts.get(v, 0) + 1
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    omega = np.array([v for v, _ in items], dtype=W.dtype)
    return omega, np.array([c for _, c in items], dtype=np.int64)


def _entropy_of_counts(counts) -> float:
    total = sum(int(c) for c in counts)
    if total == 0:
        return 0.0
    terms = [-(int(c) / total) * math.log2(int(c) / total) for c in counts if c]
    return max(math.fsum(terms), 0.0)  # fsum: exact sum of the rounded terms


def ref_entropy(W) -> float:
    """``H = -Σ p_k log2 p_k`` in bits per element (0 for an empty matrix)."""
    return _entropy_of_counts(ref_omega_counts(W)[1])


def _ranks(W: np.ndarray, omega: np.ndarray) -> list[list[int]]:
    """The rank of every entry, as nested lists (row by row)."""
    rank = {float(v): k for k, v in enumerate(omega.tolist())}
    return [[rank[v + 0.0] for v in row] for row in W.tolist()]


def ref_stats(W) -> dict:
    """Every statistic of SPEC §1 (plus CER/CSER group counts), as a plain dict."""
    W = as_matrix(W)
    m, n = W.shape
    omega, counts = ref_omega_counts(W)
    ranks = _ranks(W, omega)
    size = m * n
    zeros = sum(1 for v in W.ravel().tolist() if v == 0.0)
    groups_cer = [max(row, default=0) for row in ranks]
    groups_cser = [len({k for k in row if k != 0}) for row in ranks]
    return {
        "shape": (m, n),
        "dtype": W.dtype,
        "omega": omega,
        "counts": counts,
        "K": len(omega),
        "H": _entropy_of_counts(counts),
        "p0": counts[0] / size if size else 0.0,
        "N": sum(1 for row in ranks for k in row if k != 0),
        "zeros": zeros,
        "sparsity": zeros / size if size else 0.0,
        "nnz": size - zeros,
        "omega0": float(omega[0]) if len(omega) else 0.0,
        "groups_cer": groups_cer,
        "groups_cser": groups_cser,
        "G_cer": sum(groups_cer),
        "G_cser": sum(groups_cser),
        "efr_rows": _efr_row_summary(W, omega, counts),
    }


# --- SPEC §2 -------------------------------------------------------------------------------

def ref_dense(W) -> dict[str, np.ndarray]:
    W = as_matrix(W)
    return {"values": W.ravel().copy()}


def ref_csr(W) -> dict[str, np.ndarray]:
    """Standard CSR of the entries different from 0."""
    W = as_matrix(W)
    values, col_idx, row_ptr = [], [], [0]
    for row in W.tolist():
        for j, v in enumerate(row):
            if v != 0.0:
                values.append(v)
                col_idx.append(j)
        row_ptr.append(len(values))
    return {
        "values": np.array(values, dtype=W.dtype),
        "col_idx": np.array(col_idx, dtype=np.int64),
        "row_ptr": np.array(row_ptr, dtype=np.int64),
    }


def _row_columns_by_rank(row_ranks: list[int]) -> dict[int, list[int]]:
    """Rank → ascending columns of one row (ranks other than 0 only)."""
    by_rank: dict[int, list[int]] = {}
    for j, k in enumerate(row_ranks):  # columns visited in ascending order
        if k != 0:
            by_rank.setdefault(k, []).append(j)
    return by_rank


def ref_cer(W, omega=None) -> dict[str, np.ndarray]:
    """CER arrays: row ``i`` owns one group per rank ``1..r_i`` (empty ones included).

    ``omega`` may be given to encode with a (possibly wrong) order of the values; the
    default is :func:`ref_omega_counts`.
    """
    W = as_matrix(W)
    omega = ref_omega_counts(W)[0] if omega is None else np.asarray(omega, W.dtype)
    col_idx: list[int] = []
    omega_ptr = [0]
    row_ptr = [0]
    for row_ranks in _ranks(W, omega):
        by_rank = _row_columns_by_rank(row_ranks)
        r = max(by_rank, default=0)
        for k in range(1, r + 1):
            col_idx.extend(by_rank.get(k, []))
            omega_ptr.append(len(col_idx))
        row_ptr.append(row_ptr[-1] + r)
    return {
        "omega": omega.copy(),
        "col_idx": np.array(col_idx, dtype=np.int64),
        "omega_ptr": np.array(omega_ptr, dtype=np.int64),
        "row_ptr": np.array(row_ptr, dtype=np.int64),
    }


def ref_cser(W, omega=None) -> dict[str, np.ndarray]:
    """CSER arrays: one group per distinct non-``ω_0`` value of a row, ascending rank."""
    W = as_matrix(W)
    omega = ref_omega_counts(W)[0] if omega is None else np.asarray(omega, W.dtype)
    col_idx: list[int] = []
    omega_idx: list[int] = []
    omega_ptr = [0]
    row_ptr = [0]
    for row_ranks in _ranks(W, omega):
        by_rank = _row_columns_by_rank(row_ranks)
        for k in sorted(by_rank):
            omega_idx.append(k)
            col_idx.extend(by_rank[k])
            omega_ptr.append(len(col_idx))
        row_ptr.append(row_ptr[-1] + len(by_rank))
    return {
        "omega": omega.copy(),
        "col_idx": np.array(col_idx, dtype=np.int64),
        "omega_idx": np.array(omega_idx, dtype=np.int64),
        "omega_ptr": np.array(omega_ptr, dtype=np.int64),
        "row_ptr": np.array(row_ptr, dtype=np.int64),
    }


# --- SPEC §9 -------------------------------------------------------------------------------

def ref_code_width(policy: str, K: int) -> int:
    """Bits of one palette code: ideal ``ceil(log2 K)`` (at least 1); minimal the smallest
    of 1, 2, 4, 8, 16, 32 at least that; fixed32 32."""
    ideal = 1
    while 2**ideal < K:
        ideal += 1
    if policy == "ideal":
        return ideal
    if policy == "minimal":
        return next(b for b in (1, 2, 4, 8, 16, 32) if b >= ideal)
    if policy == "fixed32":
        return 32
    raise ValueError(policy)


def _pack_rows(ranks: list[list[int]], b: int) -> list[int]:
    """Codes of ``b`` bits into 32-bit words, each row starting on a new word, the first
    code of a word in its lowest bits."""
    per = 32 // b
    words = []
    for row in ranks:
        for start in range(0, len(row), per):
            word = 0
            for s, code in enumerate(row[start:start + per]):
                word += code * 2 ** (s * b)
            words.append(word)
    return words


def ref_palette(W) -> dict[str, np.ndarray]:
    """Palette arrays: ``omega`` and every element's rank in ``b``-bit codes, packed."""
    W = as_matrix(W)
    omega = ref_omega_counts(W)[0]
    b = ref_code_width("minimal", len(omega))
    return {"omega": omega.copy(),
            "codes": np.array(_pack_rows(_ranks(W, omega), b), dtype=np.int64)}


def ref_huffman_lengths(counts) -> list[int]:
    """Code lengths of a Huffman code over ``counts`` (rank order), built with a heap.

    Heap keys ``(weight, kind, order)``: a leaf (kind 0) before a merged node (kind 1) of
    equal weight; leaves ordered by ascending count, equal counts by descending rank;
    merged nodes in the order they were made. ``K = 1`` → ``[0]``.
    """

    K = len(counts)
    if K <= 1:
        return [0] * K
    leaves = sorted(range(K), key=lambda k: (int(counts[k]), -k))
    heap = [(int(counts[k]), 0, order, k) for order, k in enumerate(leaves)]
    heapq.heapify(heap)
    parent: dict[int, int] = {}
    made = K
    while len(heap) > 1:
        w1, _, _, a = heapq.heappop(heap)
        w2, _, _, b = heapq.heappop(heap)
        parent[a] = parent[b] = made
        heapq.heappush(heap, (w1 + w2, 1, made, made))
        made += 1
    lengths = []
    for k in range(K):
        depth, node = 0, k
        while node in parent:
            node = parent[node]
            depth += 1
        lengths.append(depth)
    return lengths


def ref_optimal_cost(counts) -> int:
    """Bits of an optimal prefix code of ``counts``: the sum of all merged weights of a
    Huffman construction (any tie rule gives the same sum)."""

    heap = [int(c) for c in counts]
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        cost += merged
        heapq.heappush(heap, merged)
    return cost


def ref_huffman(W) -> dict[str, np.ndarray]:
    """Huffman arrays: canonical code words (by length, then rank) of every element's
    rank, row after row, as a string of bits cut into 32-bit words (first bit highest)."""
    W = as_matrix(W)
    omega, counts = ref_omega_counts(W)
    lengths = ref_huffman_lengths(counts)
    words_of: dict[int, str] = {}
    code, previous = 0, 0
    for k in sorted(range(len(lengths)), key=lambda k: (lengths[k], k)):
        if lengths[k]:
            code *= 2 ** (lengths[k] - previous)
            words_of[k] = format(code, f"0{lengths[k]}b")
            code += 1
            previous = lengths[k]
    stream, row_ptr = "", [0]
    for row in _ranks(W, omega):
        stream += "".join(words_of.get(k, "") for k in row)
        row_ptr.append(len(stream))
    stream += "0" * (-len(stream) % 32)
    words = [int(stream[i:i + 32], 2) for i in range(0, len(stream), 32)]
    return {"omega": omega.copy(), "lengths": np.array(lengths, dtype=np.int64),
            "bits": np.array(words, dtype=np.int64), "row_ptr": np.array(row_ptr, np.int64)}


_REF_ENCODERS = {"dense": ref_dense, "csr": ref_csr, "cer": ref_cer, "cser": ref_cser,
                 "palette": ref_palette, "huffman": ref_huffman}


def ref_arrays(fmt_name: str, W) -> dict[str, np.ndarray]:
    """The SPEC arrays of ``W`` in format ``fmt_name``, in SPEC order."""
    return _REF_ENCODERS[fmt_name](W)


# --- SPEC §3 -------------------------------------------------------------------------------

def ref_dot(W, x) -> np.ndarray:
    """``W @ x`` computed in float64 (``x`` a vector or an ``n × B`` matrix)."""
    return np.asarray(W, dtype=np.float64) @ np.asarray(x, dtype=np.float64)


def tolerance(W, x, omega0: float | None = None, out_dtype=None, c: float = 4.0) -> np.ndarray:
    """Allowed ``|y - W @ x|`` per output (same shape as ``W @ x``).

    ``c · (n + 2) · eps · ((|W| + |ω_0|) @ |x|) + tiny``, with ``eps`` of the result dtype.

    Why ``|ω_0|`` enters: CER and CSER compute (SPEC §3)
    ``y_i = ω_0 · Σ_j x_j + Σ_g (v_g − ω_0) · Σ_{j in g} x_j``. Every entry of the row
    therefore passes through a term of size ``|ω_0| · |x_j|`` (in ``ω_0 · S``, and again
    in ``(v − ω_0)`` when ``v ≠ ω_0``) even where ``W_ij`` is 0 — the two contributions
    cancel in exact arithmetic, not in floating point. The rounding error is thus relative
    to ``(|W_ij| + |ω_0|) · |x_j|``, not to ``|W_ij| · |x_j|`` as for a plain dot product;
    for ``ω_0 = 0`` the bound is the classical ``n · eps · |W| @ |x|``.
    ``n + 2`` counts the additions of a row plus the subtraction ``v − ω_0`` and the
    product; ``tiny`` absorbs underflow to subnormals.
    """
    W = np.asarray(W)
    x = np.asarray(x)
    if out_dtype is None:
        out_dtype = np.result_type(W.dtype, x.dtype)
        if out_dtype.kind != "f" or out_dtype.itemsize < 4:
            out_dtype = np.result_type(out_dtype, np.float32)
    info = np.finfo(out_dtype)
    n = W.shape[1]
    if omega0 is None:
        omega = ref_omega_counts(W)[0]
        omega0 = float(omega[0]) if len(omega) else 0.0
    bound = (np.abs(W.astype(np.float64)) + abs(float(omega0))) @ np.abs(x.astype(np.float64))
    return c * (n + 2) * float(info.eps) * bound + 1e3 * float(info.tiny)


# --- SPEC §4 -------------------------------------------------------------------------------

def index_width(policy: str, v: int) -> int:
    """Bits of one entry of an integer array whose largest possible entry is ``v``."""
    v = max(int(v), 0)
    if policy == "fixed32":
        return 32
    if policy == "minimal":
        for bits in (8, 16, 32, 64):
            if v <= 2**bits - 1:
                return bits
        raise ValueError(v)
    if policy == "ideal":  # ceil(log2(v + 1)), at least 1, in exact integer arithmetic
        bits = 0
        while 2**bits < v + 1:
            bits += 1
        return max(bits, 1)
    raise ValueError(policy)


def ref_storage(fmt_name: str, arrays: dict, shape, policy: str = "minimal",
                value_bits: int = 32) -> dict[str, int]:
    """Bits of every array (SPEC §4), computed from the array lengths and the shape.

    Largest possible entries: ``col_idx`` ``n − 1``; ``omega_ptr`` ``N``; ``row_ptr`` its
    last entry (``nnz`` for CSR, ``G`` for CER/CSER); ``omega_idx`` ``K − 1``.
    """
    m, n = shape
    if fmt_name == "dense":
        return {"values": m * n * value_bits}
    if fmt_name == "palette":  # SPEC §9: m·n codes of b bits, padding not counted
        K = len(arrays["omega"])
        return {"omega": K * value_bits, "codes": m * n * ref_code_width(policy, K)}
    if fmt_name == "huffman":  # SPEC §9: bits exactly; lengths and row_ptr as integers
        K = len(arrays["omega"])
        total = int(arrays["row_ptr"][-1])
        longest = max(arrays["lengths"].tolist(), default=0)
        return {"omega": K * value_bits, "lengths": K * index_width(policy, longest),
                "bits": total, "row_ptr": (m + 1) * index_width(policy, total)}
    length = {name: len(arrays[name]) for name in SPEC_ARRAYS[fmt_name]}
    if fmt_name == "efr":  # SPEC §9: the bitstream counts 64 bits a word
        words = length["bits"]
        return {
            "omega": length["omega"] * value_bits,
            "lengths": length["lengths"] * index_width(
                policy, max((int(v) for v in arrays["lengths"]), default=0)),
            "bits": 64 * words,
            "row_ptr": length["row_ptr"] * index_width(policy, words),
        }
    if fmt_name == "csr":
        largest = {"col_idx": n - 1, "row_ptr": length["values"]}
    else:
        N, G, K = length["col_idx"], length["omega_ptr"] - 1, length["omega"]
        largest = {"col_idx": n - 1, "omega_idx": K - 1, "omega_ptr": N, "row_ptr": G}
    out = {}
    for name in SPEC_ARRAYS[fmt_name]:
        if name in VALUE_ARRAYS:
            out[name] = length[name] * value_bits
        else:
            out[name] = length[name] * index_width(policy, largest[name])
    return out


# --- SPEC §5 -------------------------------------------------------------------------------

def ref_op_counts(fmt_name: str, st: dict, batch: int = 1) -> dict:
    """SPEC §5 per input vector, from :func:`ref_stats` ``st``: ``adds``, ``mults``,
    ``reads`` (the format's arrays divided by ``batch``, then ``"x"``) and ``writes``."""
    m, n = st["shape"]
    B = batch
    if fmt_name == "dense":
        adds = mults = m * n
        reads = {"values": m * n / B, "x": m * n}
    elif fmt_name == "csr":
        nnz = st["nnz"]
        adds = mults = nnz
        reads = {"values": nnz / B, "col_idx": nnz / B, "row_ptr": (m + 1) / B, "x": nnz}
    elif fmt_name in ("cer", "cser"):
        N = st["N"]
        G = st["G_cer"] if fmt_name == "cer" else st["G_cser"]
        shifted = st["K"] > 0 and st["omega0"] != 0
        adds = N + G + (n + m if shifted else 0)
        mults = G + (1 if shifted else 0)
        counts = {"omega": G, "col_idx": N, "omega_idx": G, "omega_ptr": G + m,
                  "row_ptr": m + 1}
        reads = {name: counts[name] / B for name in SPEC_ARRAYS[fmt_name]}
        reads["x"] = N + (n if shifted else 0)
    elif fmt_name in ("palette", "huffman"):  # SPEC §9
        adds = mults = m * n
        counts = {"omega": m * n, "codes": m * n, "lengths": st["K"], "bits": m * n,
                  "row_ptr": m + 1}
        reads = {name: counts[name] / B for name in SPEC_ARRAYS[fmt_name]}
        reads["x"] = m * n
    elif fmt_name == "efr":
        adds, mults, reads = _efr_op_counts(st, B)
    else:
        raise KeyError(fmt_name)
    return {"adds": adds, "mults": mults, "reads": reads, "writes": m}


def _efr_op_counts(st: dict, B: int):
    """SPEC §9: a sparse row adds its entries and multiplies once per non-empty group; a
    dense row multiplies and adds every element; ``bits`` is read once per decoded item."""
    m, n = st["shape"]
    rows = st["efr_rows"]
    dense_elements = n * sum(1 for r in rows if r[0])
    sparse = [r for r in rows if not r[0]]
    entries = sum(r[1] for r in sparse)
    groups = sum(r[2] for r in sparse)
    nonempty = sum(r[3] for r in sparse)
    shifted = st["K"] > 0 and st["omega0"] != 0
    adds = entries + nonempty + dense_elements + ((n + len(sparse)) if shifted else 0)
    mults = nonempty + dense_elements + (1 if shifted else 0)
    reads = {"omega": (nonempty + dense_elements) / B, "lengths": 0 / B,
             "bits": (entries + groups + len(sparse) + dense_elements) / B,
             "row_ptr": (m + 1) / B,
             "x": entries + dense_elements + (n if shifted else 0)}
    return adds, mults, reads


# --- EFR (SPEC §9: the project's own format) ---------------------------------------------------

def ref_capped_lengths(counts, limit: int = 32) -> list[int]:
    """:func:`ref_huffman_lengths`, with codes longer than ``limit`` moved up in pairs
    (JPEG's ``Adjust_BITS``: two words of length ``i`` become one of ``i - 1`` and two of
    ``j + 1`` for the longest ``j < i - 1`` that has a word), then given back to the
    ranks shortest first; the code both Huffman-coding formats write."""
    lengths = ref_huffman_lengths(counts)
    if max(lengths, default=0) <= limit:
        return lengths
    per = [0] * (max(lengths) + 1)
    for v in lengths:
        per[v] += 1
    for i in range(len(per) - 1, limit, -1):
        while per[i] > 0:
            j = i - 2
            while per[j] == 0:
                j -= 1
            per[i] -= 2
            per[i - 1] += 1
            per[j + 1] += 2
            per[j] -= 1
    return [v for v, c in enumerate(per) for _ in range(c)]


def _canonical_codes(lengths: list[int]) -> dict[int, str]:
    """Rank → code word (most significant bit first), shorter codes first, ties by rank."""
    codes, code, prev = {}, 0, 0
    for k in sorted(range(len(lengths)), key=lambda k: (lengths[k], k)):
        if lengths[k] == 0:
            codes[k] = ""
            continue
        code <<= lengths[k] - prev
        codes[k] = format(code, f"0{lengths[k]}b")
        code += 1
        prev = lengths[k]
    return codes


def _gamma(v: int) -> str:
    """Elias gamma in stream order: z zeros, a one, then the z low bits of v, least
    significant first."""
    z = v.bit_length() - 1
    return "0" * z + "1" + "".join(str((v >> b) & 1) for b in range(z))


def _low_first(v: int, width: int) -> str:
    return "".join(str((v >> b) & 1) for b in range(width))


def _ef(cols: list[int], n: int) -> tuple[str, str]:
    """A group's Elias–Fano parts: its low parts and its unary high field."""
    c = len(cols)
    L = (n // c).bit_length()
    low = "".join(_low_first(j & ((1 << L) - 1), L) for j in cols)
    high = ["0"] * (c + ((n - 1) >> L))
    for t, j in enumerate(cols):
        high[(j >> L) + t] = "1"
    return low, "".join(high)


def _efr_rows(W: np.ndarray, omega: np.ndarray, lengths: list[int]) -> list[str]:
    """Every row's bits (before padding) in the cheaper of the two modes; a sparse row is
    its counts, then every group's low parts, then every group's high field."""
    codes = _canonical_codes(lengths)
    rows = []
    for row_ranks in _ranks(W, omega):
        dense = "1" + "".join(codes[k] for k in row_ranks)
        by_rank = _row_columns_by_rank(row_ranks)
        top = max(by_rank, default=0)
        sparse = "0" + _gamma(top + 1)
        parts = [_ef(by_rank[k], W.shape[1]) for k in range(1, top + 1) if by_rank.get(k)]
        sparse += "".join(_gamma(len(by_rank.get(k, [])) + 1) for k in range(1, top + 1))
        sparse += "".join(low for low, _ in parts) + "".join(high for _, high in parts)
        rows.append(dense if len(dense) < len(sparse) else sparse)
    return rows


def _efr_row_summary(W: np.ndarray, omega: np.ndarray, counts) -> list[tuple]:
    """Per row: (dense, entries other than ω_0, largest rank, distinct ranks other than 0)."""
    out = []
    lengths = ref_capped_lengths(counts)
    for bits, row_ranks in zip(_efr_rows(W, omega, lengths), _ranks(W, omega), strict=True):
        present = {k for k in row_ranks if k}
        out.append((bits[0] == "1", sum(1 for k in row_ranks if k), max(present, default=0),
                    len(present)))
    return out


def ref_efr(W) -> dict[str, np.ndarray]:
    """EFR arrays: ``omega``, Huffman ``lengths``, the rows' bits padded to 64-bit words
    (bit ``p`` of the stream is bit ``p % 64`` of word ``p // 64``), ``row_ptr`` in words."""
    W = as_matrix(W)
    omega, counts = ref_omega_counts(W)
    lengths = ref_capped_lengths(counts)
    words: list[int] = []
    row_ptr = [0]
    for bits in _efr_rows(W, omega, lengths):
        bits += "0" * (-len(bits) % 64)
        for w in range(0, len(bits), 64):
            words.append(int(bits[w:w + 64][::-1], 2))
        row_ptr.append(len(words))
    return {
        "omega": omega.copy(),
        "lengths": np.array(lengths, dtype=np.int64),
        "bits": np.array(words, dtype=np.uint64),
        "row_ptr": np.array(row_ptr, dtype=np.int64),
    }


def _read_gamma(bits: str, pos: int) -> tuple[int, int]:
    z = 0
    while bits[pos + z] == "0":
        z += 1
    v = 1 << z
    for b in range(z):
        v |= int(bits[pos + z + 1 + b]) << b
    return v, pos + 2 * z + 1


def ref_efr_decode(arrays: dict, shape) -> np.ndarray:
    """The matrix back from EFR arrays, parsing each row's bits one character at a time."""
    m, n = shape
    omega = np.asarray(arrays["omega"])
    lengths = [int(v) for v in arrays["lengths"]]
    decode = {code: k for k, code in _canonical_codes(lengths).items()}
    words = [int(w) for w in np.asarray(arrays["bits"], dtype=np.uint64)]
    W = np.zeros((m, n), dtype=omega.dtype)
    for i in range(m):
        lo, hi = int(arrays["row_ptr"][i]), int(arrays["row_ptr"][i + 1])
        bits = "".join(format(w, "064b")[::-1] for w in words[lo:hi])
        pos = 1
        if bits[0] == "1":
            for j in range(n):
                word = ""
                while word not in decode:
                    word += bits[pos]
                    pos += 1
                W[i, j] = omega[decode[word]]
            continue
        if n:
            W[i, :] = omega[0]
        top, pos = _read_gamma(bits, pos)
        counts = []
        for _ in range(1, top):
            c, pos = _read_gamma(bits, pos)
            counts.append(c - 1)
        groups = []  # (rank, low parts)
        for k, c in enumerate(counts, start=1):
            if c:
                L = (n // c).bit_length()
                groups.append((k, L, [int(bits[pos + t * L:pos + (t + 1) * L][::-1] or "0", 2)
                                      for t in range(c)]))
                pos += c * L
        for k, L, lows in groups:
            c = len(lows)
            t = 0
            for b in range(c + ((n - 1) >> L)):
                if bits[pos + b] == "1":
                    W[i, ((b - t) << L) | lows[t]] = omega[k]
                    t += 1
            pos += c + ((n - 1) >> L)
    return W


_REF_ENCODERS["efr"] = ref_efr
