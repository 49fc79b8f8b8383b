"""The notebooks in ``notebooks/``: stored without outputs, thin over the public API, and
executed top to bottom in a fresh kernel; and the matrices of chosen entropy of the
entropy study (``notebooks/_study.py``) against direct computations."""

from __future__ import annotations

import ast
import doctest
import importlib.util
import math
from pathlib import Path

import nbformat
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXPECTED = ["01_formats.ipynb", "02_entropy_study.ipynb", "03_networks.ipynb",
            "04_your_model.ipynb"]
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def _load_study():
    spec = importlib.util.spec_from_file_location("_study", NOTEBOOKS / "_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


study = _load_study()


def _code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


# --- the stored notebooks ---------------------------------------------------------------------


def test_every_notebook_is_there():
    assert [p.name for p in PATHS] == EXPECTED


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has stored outputs"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    assert "widgets" not in nb.metadata, f"{path.name} stores widget state"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_lowentropy_imported_before_numpy(path):
    """The first cell imports lowentropy and nothing else: its thread-pool defaults are set
    before numpy loads OpenBLAS (lowentropy.threads)."""
    first, *_ = _code_cells(path)
    tree = ast.parse(first.source)
    imported = [alias.name for node in ast.walk(tree)
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in (node.names if isinstance(node, ast.Import) else
                              [ast.alias(node.module or "")])]
    assert imported == ["lowentropy"], f"{path.name}: the first cell imports {imported}"


def _private_uses(source: str) -> list[str]:
    """Private lowentropy names a cell imports or reads (``le._x``, ``lowentropy._m``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lowentropy"):
            parts = node.module.split(".") + [a.name for a in node.names]
            found += [p for p in parts if p.startswith("_")]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lowentropy"):
                    found += [p for p in alias.name.split(".") if p.startswith("_")]
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id in ("le", "lowentropy") and node.attr.startswith("_")):
            found.append(node.attr)
    return found


def test_private_use_is_detected():
    assert _private_uses("from lowentropy._values import count_values") == ["_values"]
    assert _private_uses("import lowentropy as le\nle._jit") == ["_jit"]
    assert _private_uses("from lowentropy.report import network_report") == []


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_notebooks_use_the_public_api_only(path):
    for i, cell in enumerate(_code_cells(path)):
        assert not _private_uses(cell.source), f"{path.name} code cell {i}"


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    assert any(c.outputs for c in nb.cells if c.cell_type == "code")


# --- _study: matrices of a chosen entropy -------------------------------------------------------


def _entropy(p) -> float:
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def test_study_doctests():
    result = doctest.testmod(study, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


sparsities = st.one_of(st.sampled_from([0.0, 0.5, 0.9, 1.0]),
                       st.floats(0, 1, allow_nan=False))


@given(s=sparsities, n=st.integers(1, 300), t=st.floats(0, 1))
def test_value_distribution_has_the_target_entropy(s, n, t):
    lo, hi = study.entropy_range(s, n)
    H = lo + t * (hi - lo)
    q = study.value_distribution(s, H, n)
    assert q.shape == (n,) and math.isclose(q.sum(), 1.0, rel_tol=1e-12)
    assert np.all(np.diff(q) <= 1e-15), "probabilities must not increase with the index"
    total = _entropy([s, 1 - s]) + (1 - s) * _entropy(q)
    assert math.isclose(total, H, abs_tol=1e-7)


@given(s=st.floats(0, 0.99), n=st.integers(2, 300))
def test_entropy_range_is_one_value_to_uniform(s, n):
    lo, hi = study.entropy_range(s, n)
    assert math.isclose(lo, _entropy([s, 1 - s]), abs_tol=1e-12)
    assert math.isclose(hi, _entropy([s, *[(1 - s) / n] * n]), abs_tol=1e-9)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan])
def test_bad_sparsity(bad):
    with pytest.raises(ValueError, match="sparsity"):
        study.entropy_range(bad, 4)


def test_bad_arguments():
    with pytest.raises(TypeError, match="sparsity"):
        study.binary_entropy("0.5")
    with pytest.raises(ValueError, match="not reachable"):
        study.value_distribution(0.5, 0.5, 4)  # below h(0.5) = 1 bit
    with pytest.raises(ValueError, match="not reachable"):
        study.value_distribution(0.0, 2.5, 4)  # above log2(4)
    with pytest.raises(ValueError, match="n_values"):
        study.shared_values(0)
    with pytest.raises(ValueError, match="shape"):
        study.entropy_matrix((3,), 0.5, 1.0)
    with pytest.raises(TypeError, match="dtype"):
        study.entropy_matrix((3, 3), 0.5, 1.0, dtype=np.int32)


def test_shared_values_are_distinct_and_nonzero():
    v = study.shared_values(255)
    assert v.dtype == np.float32 and np.unique(v).size == 255 and np.all(v != 0)


@given(m=st.integers(1, 40), n=st.integers(1, 40), s=sparsities, t=st.floats(0, 1),
       k=st.integers(1, 20), seed=st.integers(0, 2**32 - 1))
def test_entropy_matrix_zeros_values_and_seed(m, n, s, t, k, seed):
    lo, hi = study.entropy_range(s, k)
    H = lo + t * (hi - lo)
    W = study.entropy_matrix((m, n), s, H, n_values=k, seed=seed)
    assert W.shape == (m, n) and W.dtype == np.float32
    assert int((W == 0).sum()) == round(s * m * n)
    assert set(np.unique(W[W != 0]).tolist()) <= set(study.shared_values(k).tolist())
    assert np.array_equal(W, study.entropy_matrix((m, n), s, H, n_values=k, seed=seed))


@given(s=st.sampled_from([0.0, 0.3, 0.8]), a=st.floats(0, 1), b=st.floats(0, 1),
       seed=st.integers(0, 1000))
def test_lower_entropy_lowers_every_value_index(s, a, b, seed):
    """The coupling: same zeros, and each entry's value index is monotone in H."""
    k = 31
    lo, hi = study.entropy_range(s, k)
    H1, H2 = sorted((lo + a * (hi - lo), lo + b * (hi - lo)))
    assume(H2 - H1 > 1e-9)
    W1 = study.entropy_matrix((16, 32), s, H1, n_values=k, seed=seed)
    W2 = study.entropy_matrix((16, 32), s, H2, n_values=k, seed=seed)
    assert np.array_equal(W1 == 0, W2 == 0)
    index = {v: i for i, v in enumerate(study.shared_values(k).tolist())}
    nz = W1 != 0
    i1 = np.array([index[v] for v in W1[nz].tolist()])
    i2 = np.array([index[v] for v in W2[nz].tolist()])
    assert np.all(i1 <= i2)


@pytest.mark.parametrize(("s", "H"), [(0.0, 0.5), (0.0, 6.0), (0.5, 2.0), (0.9, 0.8)])
def test_entropy_matrix_reaches_the_entropy(s, H):
    W = study.entropy_matrix((256, 1024), s, H, seed=3)
    values, counts = np.unique(W, return_counts=True)
    assert abs(_entropy(counts / W.size) - H) < 0.02
    assert values.size <= 256
