"""lowentropy: matrix formats whose size and dot-product cost follow the entropy.

Implements CER (Compressed Entropy Row) and CSER (Compressed Shared Elements Row) of
Wiedemann, Müller & Samek, *Compact and Computationally Efficient Representation of Deep
Neural Networks* (arXiv 1805.10692), next to dense and CSR, with the statistics and the
cost model that compare them.

Examples
--------
>>> import numpy as np, lowentropy as le
>>> W = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, -0.5]], dtype=np.float32)
>>> f = le.CSER.from_dense(W)
>>> np.array_equal(f.to_dense(), W)
True
>>> f @ np.ones(3, np.float32)
array([1., 0.], dtype=float32)
>>> sorted(le.FORMATS)
['cer', 'cser', 'csr', 'dense', 'huffman', 'palette']
"""

from __future__ import annotations

# First, before anything imports numpy: the thread-pool defaults (see lowentropy.threads).
from .threads import set_thread_policy, thread_info, thread_policy

# isort: split
from .compress import QuantizationError, prune, prune_global, quantization_error, quantize
from .cost import (
    DEFAULT_TABLE,
    PRESETS,
    CostRow,
    EnergyReport,
    EnergyTable,
    compare,
    energy,
    get_table,
    table_text,
)
from .formats import (
    CER,
    CSER,
    CSR,
    FORMATS,
    POLICIES,
    Dense,
    Format,
    Huffman,
    OpCounts,
    Palette,
    StorageReport,
    get_format,
)
from .io import load, load_network, save
from .memory import MemoryBudgetError, memory_budget, set_memory_budget
from .networks import Layer, Network, accuracy, catalogue_specs, list_networks
from .networks.training import Cancelled
from .quantized import Quantized
from .recipe import Recipe
from .sensitivity import SensitivityTable, choose_rates, sensitivity
from .stats import Stats, entropy, stats
from .sweep import SweepTable, sweep

__version__ = "0.1.0"

__all__ = [
    "FORMATS", "get_format", "Format", "Dense", "CSR", "CER", "CSER", "Palette", "Huffman",
    "StorageReport", "OpCounts", "POLICIES", "Stats", "stats", "entropy",
    "EnergyTable", "PRESETS", "DEFAULT_TABLE", "get_table", "EnergyReport", "energy",
    "CostRow", "compare", "table_text", "Layer", "Network", "load_network", "save", "load",
    "list_networks", "catalogue_specs", "accuracy", "prune", "prune_global", "quantize",
    "quantization_error", "QuantizationError", "Quantized", "MemoryBudgetError",
    "memory_budget", "set_memory_budget", "sweep", "SweepTable", "set_thread_policy",
    "thread_policy", "thread_info", "Recipe", "Cancelled",
    "sensitivity", "SensitivityTable", "choose_rates",
]
