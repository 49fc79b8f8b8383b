"""Producing low-entropy matrices (SPEC §6): magnitude pruning and quantization.

- :func:`prune`, :func:`prune_global`: magnitude pruning, exact, without sorting;
- :func:`quantize`: ``"uniform"`` (symmetric, 0 a level) or ``"kmeans"`` (weight sharing);
- :func:`quantization_error`: how far the result is from the original.
"""

from __future__ import annotations

from .error import QuantizationError, quantization_error
from .pruning import prune, prune_global
from .quantization import METHODS, quantize

__all__ = ["prune", "prune_global", "quantize", "METHODS", "quantization_error",
           "QuantizationError"]
