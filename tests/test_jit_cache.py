"""numba's on-disk cache is keyed on all of the package's sources, not only on the file
that defines a kernel (a kernel inlines helpers from other modules)."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
import textwrap

import numba
import pytest

import lowentropy
from lowentropy import _jit


def test_the_digest_follows_every_source_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("A = 1\n")
    (tmp_path / "sub" / "b.py").write_text("B = 2\n")
    (tmp_path / "notes.txt").write_text("not a source")
    first = _jit.sources_digest(tmp_path)
    assert _jit.sources_digest(tmp_path) == first
    (tmp_path / "notes.txt").write_text("changed, still not a source")
    assert _jit.sources_digest(tmp_path) == first
    (tmp_path / "sub" / "b.py").write_text("B = 3\n")  # a helper module, not the kernel's
    assert _jit.sources_digest(tmp_path) != first
    (tmp_path / "sub" / "b.py").write_text("B = 2\n")
    (tmp_path / "sub" / "b.py").rename(tmp_path / "b.py")  # same text, another module
    assert _jit.sources_digest(tmp_path) != first


def _cached_kernels():
    for info in pkgutil.walk_packages(lowentropy.__path__, "lowentropy."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, numba.core.registry.CPUDispatcher) \
                    and value.py_func.__module__ == info.name and value._cache.__class__ \
                    is not numba.core.caching.NullCache:
                yield f"{info.name}.{name}", value


@pytest.mark.skipif(not _jit.CACHE, reason="LOWENTROPY_NUMBA_CACHE=0 turns the cache off")
def test_every_cached_kernel_is_keyed_on_the_package_sources():
    kernels = dict(_cached_kernels())
    assert len(kernels) > 50 and "lowentropy.formats.huffman._long_symbol" in kernels
    stale = [name for name, k in kernels.items()
             if k._cache._cache_file._source_stamp[-1] != _jit.SOURCES]
    assert stale == []


_PROBE = """
import json, sys
from lowentropy import _jit
_jit.SOURCES = sys.argv[1]  # what another version of the package would hash to
sys.path.insert(0, sys.argv[2])
from probe import twice
twice(3)
print(json.dumps(sum(twice.stats.cache_hits.values())))
"""


def test_a_cache_written_by_other_sources_is_not_loaded(tmp_path):
    (tmp_path / "probe.py").write_text(textwrap.dedent("""
        from lowentropy._jit import kernel

        @kernel()
        def twice(x):
            return 2 * x
    """))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
           "LOWENTROPY_NUMBA_CACHE": "1"}
    env.pop("NUMBA_DISABLE_JIT", None)

    def run(sources: str) -> list[int]:
        out = subprocess.run([sys.executable, "-c", _PROBE, sources, str(tmp_path)], env=env,
                             capture_output=True, text=True, check=True, timeout=120)
        return json.loads(out.stdout.strip().splitlines()[-1])  # loads from the cache

    assert run("old sources") == 0  # compiled and written
    assert run("old sources") == 1  # loaded
    assert run("new sources") == 0  # same file, other package sources: compiled again
