"""Sweeps: which layers CER/CSER help at which pruning and quantization settings.

:func:`sweep` runs every layer of a network at every setting and accounts for every format
(one task per layer and group of settings; in-process, in local worker processes or on a
``dask.distributed`` cluster); :class:`SweepTable` holds, selects and exports the rows.
"""

from ._run import SMALL_SWEEP, sweep
from ._table import COLUMNS, SweepTable
from .progress import ProgressBar

__all__ = ["sweep", "SweepTable", "COLUMNS", "SMALL_SWEEP", "ProgressBar"]
