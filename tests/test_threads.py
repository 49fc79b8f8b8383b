"""The thread policy (lowentropy.threads): environment defaults that never override the
user, detection of pools loaded before the library, and the documented strategy rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest

import lowentropy as le
from lowentropy import threads
from lowentropy.threads import ENV_DEFAULTS, Pool, pool_spins

ROOT = Path(__file__).resolve().parents[1]
VARIABLES = (*ENV_DEFAULTS, "KMP_BLOCKTIME", threads.ENV_KNOB)


def fresh_process(code: str, **env: str) -> dict:
    """Run ``code`` in a new interpreter (the environment's thread variables cleared, then
    ``env``); the code prints one JSON line, returned."""
    environ = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    environ.update(env)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


REPORT = ("import json, os, lowentropy as le; info = le.thread_info(); "
          f"info['env'] = {{k: os.environ.get(k) for k in {tuple(ENV_DEFAULTS)!r}}}; "
          "print(json.dumps(info))")


# --- environment defaults ---------------------------------------------------------------------

def test_import_first_sets_every_default_before_any_pool_loads():
    info = fresh_process(REPORT)
    assert info["env"] == ENV_DEFAULTS
    assert info["set_by_lowentropy"] == ENV_DEFAULTS
    assert info["pools_before_import"] == []  # numpy's OpenBLAS was not loaded yet
    assert info["foreign_spinning"] == [] and info["strategy"] == "parallel"


def test_user_values_are_never_overridden():
    info = fresh_process(REPORT, OMP_WAIT_POLICY="ACTIVE", OPENBLAS_THREAD_TIMEOUT="25")
    assert info["env"] == {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "10000",
                           "OPENBLAS_THREAD_TIMEOUT": "25"}
    assert info["set_by_lowentropy"] == {"GOMP_SPINCOUNT": "10000"}
    assert info["environment_before_import"]["OMP_WAIT_POLICY"] == "ACTIVE"


def test_startup_sets_only_what_is_missing():
    environ = {"GOMP_SPINCOUNT": "7", "OMP_WAIT_POLICY": ""}
    state = threads._startup(environ)
    assert environ["GOMP_SPINCOUNT"] == "7" and environ["OMP_WAIT_POLICY"] == ""
    assert environ["OPENBLAS_THREAD_TIMEOUT"] == "18"
    assert state.set_here == {"OPENBLAS_THREAD_TIMEOUT": "18"}
    assert state.environ_before["GOMP_SPINCOUNT"] == "7"


# --- which pools spin -----------------------------------------------------------------------

GOMP = {"user_api": "openmp", "internal_api": "openmp", "prefix": "libgomp", "num_threads": 2}
IOMP = {"user_api": "openmp", "internal_api": "openmp", "prefix": "libiomp", "num_threads": 2}
OPENBLAS = {"user_api": "blas", "internal_api": "openblas", "prefix": "libscipy_openblas",
            "threading_layer": "pthreads", "num_threads": 2}


@pytest.mark.parametrize(("info", "env", "spins"), [
    (GOMP, {}, True),  # 300000 rounds by default
    (GOMP, {"OMP_WAIT_POLICY": "passive"}, False),
    (GOMP, {"OMP_WAIT_POLICY": "ACTIVE"}, True),
    (GOMP, {"GOMP_SPINCOUNT": "10000"}, False),
    (GOMP, {"GOMP_SPINCOUNT": "10001"}, True),
    (GOMP, {"GOMP_SPINCOUNT": "10k"}, False),
    (GOMP, {"GOMP_SPINCOUNT": "1M", "OMP_WAIT_POLICY": "PASSIVE"}, True),  # count wins
    (GOMP, {"GOMP_SPINCOUNT": "infinite"}, True),
    (GOMP, {"GOMP_SPINCOUNT": "nonsense", "OMP_WAIT_POLICY": "PASSIVE"}, False),
    ({**GOMP, "num_threads": 1}, {}, False),
    (IOMP, {}, True),
    (IOMP, {"OMP_WAIT_POLICY": "PASSIVE"}, False),
    (IOMP, {"KMP_BLOCKTIME": "0"}, False),
    (OPENBLAS, {}, True),  # 2**28 cycles by default
    (OPENBLAS, {"OPENBLAS_THREAD_TIMEOUT": "18"}, False),
    (OPENBLAS, {"OPENBLAS_THREAD_TIMEOUT": "19"}, True),
    (OPENBLAS, {"OPENBLAS_THREAD_TIMEOUT": "1"}, False),  # clamped to 4
    ({**OPENBLAS, "threading_layer": "openmp"}, {}, False),  # its OpenMP pool is listed apart
    ({**OPENBLAS, "num_threads": 1}, {}, False),
    ({"user_api": "blas", "internal_api": "mkl", "prefix": "libmkl_rt", "num_threads": 2}, {},
     False),
])
def test_pool_spins_follows_the_runtime_rules(info, env, spins):
    assert pool_spins(info, env) is spins


# --- the strategy rule ------------------------------------------------------------------------

def pool(user_api: str, spins: bool) -> Pool:
    return Pool(user_api, "openmp" if user_api == "openmp" else "openblas", "lib", "/x.so", 2,
                "pthreads", spins)


@pytest.fixture
def startup(monkeypatch):
    """Replace what was found at import; restore the policy afterwards."""
    previous = le.thread_policy()

    def found(*pools: Pool) -> None:
        monkeypatch.setattr(threads, "_STARTUP", threads._Startup({}, {}, tuple(pools)))

    yield found
    le.set_thread_policy(previous)


@pytest.mark.parametrize(("pools", "expected"), [
    ((), "parallel"),
    ((pool("openmp", False),), "parallel"),
    ((pool("blas", True),), "parallel"),  # a spinning OpenBLAS alone does not switch
    ((pool("openmp", True),), "serial"),
    ((pool("blas", False), pool("openmp", True)), "serial"),
])
def test_auto_strategy_follows_the_documented_rule(startup, pools, expected):
    startup(*pools)
    le.set_thread_policy("auto")
    assert threads.strategy() == expected
    assert le.thread_info()["strategy"] == expected


@pytest.mark.parametrize("policy", ["parallel", "serial"])
def test_explicit_policy_wins_over_detection(startup, policy):
    startup(pool("openmp", True))
    le.set_thread_policy(policy)
    assert threads.strategy() == policy


def test_use_threads_needs_work_threads_and_a_parallel_strategy(startup, monkeypatch):
    startup()
    le.set_thread_policy("parallel")
    monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", 100)
    many = numba.get_num_threads() > 1
    assert threads.use_threads(100) is many
    assert threads.use_threads(99) is False
    le.set_thread_policy("serial")
    assert threads.use_threads(10**9) is False


def test_set_thread_policy_refuses_unknown_values():
    with pytest.raises(ValueError, match="auto, parallel, serial"):
        le.set_thread_policy("fast")
    with pytest.raises(ValueError, match="policy must be one of"):
        le.set_thread_policy(2)


def test_products_plan_follows_the_strategy(startup, monkeypatch):
    import numpy as np

    startup()
    monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", 0)
    f = le.CSER.from_dense(np.eye(50, dtype=np.float32))
    le.set_thread_policy("serial")
    assert f._plan(1)[0] is False
    le.set_thread_policy("parallel")
    assert f._plan(1)[0] is (numba.get_num_threads() > 1)


@pytest.mark.nojit
@pytest.mark.parametrize("bits", [4, 8])
def test_a_small_palette_product_runs_no_parallel_kernel(startup, monkeypatch, bits):
    """Below the work threshold every kernel of palette's vector product is the one-thread
    twin, the column tables too: a parallel region waits for every thread, and on a busy
    machine a descheduled one costs milliseconds (a 300 x 64 layer's product took 0.55 ms
    instead of 0.03 in a dashboard)."""
    import numpy as np

    from lowentropy.formats import palette

    startup()
    le.set_thread_policy("parallel")

    def refuse(*args):
        raise AssertionError("a parallel kernel ran on a small product")

    for name in ("_column_tables", "_matvec_tables", "_matvec_direct", "_decode_tile"):
        monkeypatch.setattr(palette, name, refuse)
    rng = np.random.default_rng(bits)
    values = rng.standard_normal(2 ** bits).astype(np.float32)
    W = values[rng.integers(0, values.size, (300, 64))]
    x = rng.standard_normal(64).astype(np.float32)
    f = le.Palette.from_dense(W)
    assert f.code_bits == bits and W.size < threads.PARALLEL_MIN_WORK
    np.testing.assert_allclose(f @ x, W.astype(np.float64) @ x, rtol=1e-5, atol=1e-4)


# --- import orders, in fresh processes ----------------------------------------------------------

def test_numpy_first_finds_a_spinning_openblas_but_stays_parallel():
    info = fresh_process("import numpy\n" + REPORT)
    blas = [p for p in info["pools_before_import"] if p["internal_api"] == "openblas"]
    assert blas and all(p["spins"] for p in blas if p["num_threads"] > 1)
    assert info["strategy"] == "parallel"


def test_an_openmp_runtime_loaded_first_switches_auto_to_serial():
    # a GNU OpenMP runtime loaded before lowentropy, as torch's is when torch comes first
    code = ("import ctypes, ctypes.util\n"
            "ctypes.CDLL(ctypes.util.find_library('gomp'), mode=ctypes.RTLD_GLOBAL)\n" + REPORT)
    info = fresh_process(code, OMP_NUM_THREADS="2")
    assert any("gomp" in path for path in info["foreign_spinning"])
    assert info["strategy"] == "serial" and info["policy"] == "auto"
    passive = fresh_process(code, OMP_NUM_THREADS="2", OMP_WAIT_POLICY="PASSIVE")
    assert passive["foreign_spinning"] == [] and passive["strategy"] == "parallel"
    forced = fresh_process(code, OMP_NUM_THREADS="2", LOWENTROPY_THREADS="parallel")
    assert forced["strategy"] == "parallel"


def test_the_environment_knob_is_checked():
    done = subprocess.run([sys.executable, "-c", "import lowentropy"], cwd=ROOT,
                          env={**os.environ, threads.ENV_KNOB: "fastest"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "LOWENTROPY_THREADS must be one of auto, parallel, serial" in done.stderr
