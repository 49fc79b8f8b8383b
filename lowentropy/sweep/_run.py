"""``sweep``: every layer x pruning/quantization setting x format, locally or on Dask."""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..cost import DEFAULT_TABLE, get_table
from ..formats import FORMATS, POLICIES, get_format
from ..networks.model import Network
from ..recipe import Recipe
from . import _tasks
from ._log import SweepLog, row_key
from ._settings import make_settings, row_key_of
from ._source import SweepSource, resolve_source
from ._table import SweepTable
from .progress import ProgressBar

__all__ = ["sweep", "SMALL_SWEEP"]

#: Below this many weight x settings in all, ``workers=None`` runs in-process: starting
#: worker processes (about a second each) would cost more than the work.
SMALL_SWEEP = 4_000_000

#: A local task whose worker process died this many times is given up.
_MAX_DEATHS = 3


def _chunks(settings: list[Recipe], n_layers: int, parallel: int) -> int:
    """Settings per task: all of a layer's, unless there are too few layers to keep
    ``parallel`` workers busy."""
    if n_layers >= 2 * parallel or len(settings) == 1:
        return len(settings)
    pieces = min(len(settings), math.ceil(2 * parallel / max(n_layers, 1)))
    return math.ceil(len(settings) / pieces)


def _config(src: SweepSource, options: _tasks.Options, whole: dict) -> dict:
    """The log's configuration line; ``whole`` (global threshold, retraining and seed)
    only when set, so that logs written before those options existed still resume."""
    table = options.table
    return {"version": 1, "network": src.name, "source": src.source or "memory",
            "fingerprint": src.fingerprint, "formats": list(options.formats),
            "policy": options.policy, "value_bits": options.value_bits,
            "table": table if isinstance(table, str) else table.to_dict(),
            "measure": options.measure, **whole}


def _run_local(tasks, run, workers: int, on_result) -> None:
    """Tasks on a pool of ``workers`` processes; a pool whose worker died (killed, out
    of memory) is replaced and the unfinished tasks are run again."""
    pending = list(tasks)
    deaths: dict[int, int] = {}
    context = multiprocessing.get_context("spawn")  # numba's OpenMP is not fork-safe
    while pending:
        pool = ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=context)
        futures = {pool.submit(run, t): t for t in pending}
        try:
            not_done = set(futures)
            while not_done:
                done, not_done = wait(not_done, return_when=FIRST_COMPLETED)
                for fut in done:
                    if isinstance(fut.exception(), BrokenProcessPool):
                        continue
                    rows = fut.result()  # a task's own error propagates
                    on_result(futures[fut], rows)
                    pending.remove(futures[fut])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        for t in pending:  # only when the pool broke
            deaths[id(t)] = deaths.get(id(t), 0) + 1
            if deaths[id(t)] >= _MAX_DEATHS:
                raise RuntimeError(f"worker processes died {_MAX_DEATHS} times while layer "
                                   f"{t.layer.name!r} ran (out of memory?); try workers=1")


def _run_dask(client, tasks, run, on_result) -> None:
    """Tasks on a ``dask.distributed`` client, results taken as they complete."""
    from distributed import as_completed

    futures = {client.submit(run, t, pure=False): t for t in tasks}
    try:
        for fut, rows in as_completed(list(futures), with_results=True):
            on_result(futures[fut], rows)
    except BaseException:
        client.cancel(list(futures))
        raise


def _is_digits(src: SweepSource) -> bool:
    from ..networks.embedded import ARCHITECTURES

    layout = [(m.name, m.shape) for m in src.layers]
    return any(layout == [(s.layer, s.shape) for s in steps if s.layer]
               for steps in ARCHITECTURES.values())


def _network(src: SweepSource) -> Network:
    if src.network is not None:
        return src.network
    from ..io.network import load_network

    return load_network(src.source)


def _accuracies(src: SweepSource, settings: list[Recipe]) -> dict[Recipe, float]:
    """Test accuracy of the whole network compressed at each setting, for the networks
    :func:`lowentropy.accuracy` knows (the embedded digits networks); else empty."""
    from ..networks.embedded import accuracy

    if not _is_digits(src):
        return {}
    net = _network(src)
    return {s: accuracy(s.apply(net)) for s in settings}


def _progress(progress) -> Callable[[int, int, str], object] | None:
    if progress is True:
        return ProgressBar(True, unit="layer settings")
    if progress is False or progress is None:
        return None
    if not callable(progress):
        raise TypeError(f"progress must be True, False or a callable(done, total, name), "
                        f"got {type(progress).__name__}")
    return progress


def sweep(
    network: Network | str | os.PathLike,
    prune: float | Mapping[str, float] | Sequence[float | Mapping[str, float]] = (0.0,),
    bits: int | Sequence[int | None] | None = None,
    clusters: int | Sequence[int | None] | None = None,
    method: str | None = None,
    formats: Sequence[str] | None = None,
    policy: str = "minimal",
    value_bits: int = 32,
    measure: bool = False,
    client=None,
    workers: int | None = None,
    out: str | os.PathLike | None = None,
    progress: bool | Callable[[int, int, str], object] = True,
    *,
    table: str = DEFAULT_TABLE.name,
    global_prune: bool = False,
    retrain: bool = False,
    seed: int = 0,
) -> SweepTable:
    """Every layer at every pruning x quantization setting, in every format.

    For each layer and setting the layer is pruned (magnitude, per layer) and quantized
    exactly as :func:`lowentropy.network_report` does, and its statistics priced by
    :func:`lowentropy.compare` (``compare(stats(quantize(prune(W))))``: no format is
    encoded, unless ``measure``).

    Parameters
    ----------
    network : Network, str or os.PathLike
        A network, a name of :func:`lowentropy.list_networks`, or what
        :func:`lowentropy.load_network` reads (a sharded checkpoint's folder or index
        too). Tasks open their layer themselves from a path or a name, memory-mapped where
        the file allows; a network that exists only in memory is sent as its arrays.
    prune : float, mapping or sequence of them
        Fractions pruned per layer, in [0, 1]; a mapping layer name -> fraction prunes
        the named layers only (each row's ``prune`` is its layer's fraction).
    bits, clusters : int or sequence of int, optional
        Uniform quantizer bits (2..32) or k-means clusters; ``None`` among them (or
        neither given) adds the unquantized setting. Give one of them.
    method : {"uniform", "kmeans"}, optional
        Default: ``"kmeans"`` with ``clusters``, else ``"uniform"``.
    formats : sequence of str, optional
        Format names, in the order of the rows; by default every registered format
        (:data:`lowentropy.FORMATS`).
    policy, value_bits, table
        Index policy, value width and energy table (see :func:`lowentropy.compare`).
    measure : bool
        Also time one product ``W @ x`` per format (encodes every layer; timings taken
        while other workers run are noisier).
    client : dask.distributed.Client, optional
        Run the tasks on this cluster (each Dask thread runs numba on one thread).
    workers : int, optional
        Local worker processes when there is no ``client``: default ``os.cpu_count()``
        (in-process for a sweep under :data:`SMALL_SWEEP` weight x settings); 1 runs
        in this process, without a pool.
    out : str or os.PathLike, optional
        A JSON-lines log written as tasks finish (flushed per task). Running again with
        the same ``out`` skips every layer x setting already there, so an interrupted
        sweep resumes; the log must come from the same network, files and options.
    progress : bool or callable
        A progress bar on stderr, or ``progress(done, total, layer)`` in layer x setting
        units.
    global_prune : bool
        One magnitude threshold over the whole network per fraction (``prune`` must be
        fractions).
    retrain : bool
        Retrain the network at every setting as Deep Compression does
        (:class:`lowentropy.Recipe` with ``retrain=True``; needs a network with training
        data, the embedded digits networks). Settings that need the whole network
        (``global_prune``, ``retrain``) are compressed in this process, one setting at a
        time; their rows carry the accuracy measured then.
    seed : int
        Seed of the retraining.

    Returns
    -------
    SweepTable
        One row per layer x setting x format, in layer, setting (pruning outer, levels
        inner, as given) and format order, whichever task finished first. ``adds``,
        ``mults``, ``reads`` and ``energy_pj`` are per input vector (one product with the
        layer's matrix); ``accuracy`` is the test accuracy of the whole network compressed
        at the setting, for the embedded digits networks only.

    Raises
    ------
    ValueError, TypeError
        Bad settings, formats or options (the message names the problem).

    Examples
    --------
    >>> from lowentropy.sweep import sweep
    >>> t = sweep("lenet-300-100", prune=[0.5, 0.9], bits=[4], formats=["csr", "cser"],
    ...           workers=1, progress=False)
    >>> len(t), sorted({row["layer"] for row in t.rows})
    (12, ['fc1', 'fc2', 'fc3'])
    >>> row = t.where(layer="fc1", prune=0.5, format="cser").rows[0]
    >>> row["quantizer"], row["levels"], row["ratio_to_dense"] > 4, row["accuracy"] > 0.9
    ('uniform', 4, True, True)
    """
    settings = make_settings(prune, bits, clusters, method, global_prune=global_prune,
                             retrain=retrain, seed=seed)
    formats = _check_options(formats, policy, value_bits, table, workers)
    report = _progress(progress)
    src = resolve_source(network, identify=out is not None)
    _check_layers(src, settings)
    options = _tasks.Options(src.name, formats, policy, value_bits, table, bool(measure))
    if retrain:
        from ..networks.training import training_steps

        training_steps(_network(src))  # ValueError now for a network without data
    whole = {k: v for k, v in (("global_prune", bool(global_prune)), ("retrain", retrain),
                               ("seed", seed if retrain else 0)) if v}

    log = SweepLog(out, _config(src, options, whole)) if out is not None else None
    done = dict(log.done) if log is not None else {}
    try:
        if whole:
            _execute_whole(src, settings, options, done, log, report)
        else:
            _execute(src, settings, options, done, log, client, workers, report)
    finally:
        if log is not None:
            log.close()
    accuracy = {} if whole else _accuracies(src, settings)
    rows = []
    for meta in src.layers:
        for s in settings:
            for row in done[row_key_of(meta.name, s)]:
                rows.append({**row, "accuracy": row["accuracy"] if whole
                             else accuracy.get(s)})
    return SweepTable(rows)


def _check_options(formats, policy, value_bits, table, workers) -> tuple[str, ...]:
    if formats is None:
        formats = list(FORMATS)
    elif isinstance(formats, str):
        formats = [formats]
    formats = tuple(formats)
    if not formats:
        raise ValueError("formats is empty; give format names from lowentropy.FORMATS")
    for name in formats:
        get_format(name)
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if isinstance(value_bits, bool) or not isinstance(value_bits, int) or value_bits < 1:
        raise ValueError(f"value_bits must be a positive int, got {value_bits!r}")
    get_table(table)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers must be a positive int or None, got {workers!r}")
    return formats


def _check_layers(src: SweepSource, settings: list[Recipe]) -> None:
    """Prune mappings name existing layers; settings compressed as a whole network do
    not share a layer's log rows (their rows differ even where a layer's fraction is the
    same)."""
    names = [m.name for m in src.layers]
    for s in settings:
        unknown = [n for n, _ in s.prune if n not in names] if s.per_layer else []
        if unknown:
            raise ValueError(f"prune names layers that network {src.name!r} does not "
                             f"have: {unknown}; its layers are: {', '.join(names)}")
    if settings[0].retrain:
        keys = [row_key_of(n, s) for s in settings for n in names]
        if len(set(keys)) < len(keys):
            raise ValueError("with retrain=True, two settings give a layer the same fraction "
                             "and quantizer (their rows would be confused); sweep them "
                             "separately")


def _execute_whole(src: SweepSource, settings: list[Recipe], options, done: dict,
                   log: SweepLog | None, report) -> None:
    """Settings that compress the whole network at once (global threshold, retraining):
    one setting at a time, in this process."""
    from ..networks.embedded import accuracy

    total = len(src.layers) * len(settings)
    todo = [s for s in settings
            if any(row_key_of(m.name, s) not in done for m in src.layers)]
    finished = total - len(src.layers) * len(todo)
    if report is not None and finished:
        report(finished, total, "(resumed)")
    if not todo:
        return
    net = _network(src)
    digits = _is_digits(src)
    for s in todo:
        compressed = s.apply(net)
        acc = accuracy(compressed) if digits else None
        for meta, layer in zip(src.layers, compressed.layers, strict=True):
            rows = _tasks.run_task(_tasks.Task("array", "", meta, (s,), options,
                                               layer.weight, compressed=True))
            rows = [{**row, "accuracy": acc} for row in rows]
            done[row_key_of(meta.name, s)] = rows
            if log is not None:
                log.write(rows)
            finished += 1
            if report is not None:
                report(finished, total, meta.name)


def _todo(src: SweepSource, settings: list[Recipe], done: dict) -> tuple[list, int]:
    """``([(layer, settings not done)], layer x setting pairs in all)``, one setting per
    log key (a mapping may give a layer the fraction another setting gives it)."""
    todo, total = [], 0
    for m in src.layers:
        keys: dict[tuple, Recipe] = {}
        for s in settings:
            keys.setdefault(row_key_of(m.name, s), s)
        total += len(keys)
        missing = [s for k, s in keys.items() if k not in done]
        if missing:
            todo.append((m, missing))
    return todo, total


def _execute(src: SweepSource, settings: list[Recipe], options, done: dict,
             log: SweepLog | None, client, workers: int | None, report) -> None:
    todo, total = _todo(src, settings, done)
    finished = total - sum(len(ss) for _, ss in todo)
    if report is not None and finished:
        report(finished, total, "(resumed)")
    if not todo:
        return
    work = sum(m.weights * len(ss) for m, ss in todo)
    if client is not None:
        parallel = max(1, sum(client.nthreads().values()))
        mode, threads = "dask", 1
    else:
        parallel = workers if workers is not None else (
            1 if work < SMALL_SWEEP else (os.cpu_count() or 1))
        mode = "local" if parallel > 1 else "inline"
        threads = max(1, (os.cpu_count() or 1) // parallel) if mode == "local" else None
    tasks = []
    for meta, ss in todo:
        size = _chunks(ss, len(todo), parallel)
        for i in range(0, len(ss), size):
            tasks.append(_tasks.Task(src.kind, src.source, meta, tuple(ss[i:i + size]),
                                     options, src.arrays.get(meta.name), threads))
    tasks.sort(key=lambda t: -t.layer.weights * len(t.settings))  # longest first
    progress = {"n": finished}

    def on_result(task: _tasks.Task, rows: list[dict]) -> None:
        fresh = {}
        for row in rows:
            fresh.setdefault(row_key(row), []).append(row)
        new = {k: v for k, v in fresh.items() if k not in done}
        if not new:
            return  # a task that ran twice
        done.update(new)
        if log is not None:
            log.write([row for group in new.values() for row in group])
        progress["n"] += len(new)
        if report is not None:
            report(progress["n"], total, task.layer.name)

    run = _tasks.run_task  # looked up now, so that it can be replaced
    if mode == "dask":
        _run_dask(client, tasks, run, on_result)
    elif mode == "local" and len(tasks) > 1:
        _run_local(tasks, run, min(parallel, len(tasks)), on_result)
    else:
        for t in tasks:
            on_result(t, run(t))
