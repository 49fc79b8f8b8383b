"""Consistency of the packaging files: pyproject.toml, environment.yml, README.md, .ci/run."""

from __future__ import annotations

import os
import re
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.nojit

ROOT = Path(__file__).resolve().parent.parent

_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _split(requirement: str) -> tuple[str, str]:
    """'numpy>=2.0' -> ('numpy', '>=2.0'); also drops extras and environment markers."""
    m = _REQ.match(requirement.split(";")[0])
    assert m, f"cannot parse requirement {requirement!r}"
    return _normalize(m.group(1)), m.group(2).replace(" ", "")


def _lower_bound(spec: str) -> tuple[int, ...] | None:
    for part in spec.split(","):
        if part.startswith(">="):
            nums = [int(x) for x in part[2:].split(".")]
            while len(nums) > 1 and nums[-1] == 0:  # 2.0 == 2
                nums.pop()
            return tuple(nums)
    return None


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _pyproject_requirements() -> dict[str, str]:
    project = _pyproject()["project"]
    reqs = list(project["dependencies"])
    for extra, items in project["optional-dependencies"].items():
        if extra != "dev":
            reqs += items
    out: dict[str, str] = {}
    for req in reqs:
        name, spec = _split(req)
        assert out.get(name, spec) == spec, f"{name} listed with different versions in pyproject"
        out[name] = spec
        for extra in _EXTRAS_IN_CONDA.get(name, ()):  # conda packages an extra stands for
            if f"[{extra}]" in req.replace(" ", ""):
                out[extra] = spec
    return out


#: extras of PyPI requirements that conda-forge ships as packages of their own
_EXTRAS_IN_CONDA = {"dask": ("distributed",)}


def _environment_yml() -> tuple[list[str], list[str]]:
    """Tiny parser for our environment.yml: (conda dependencies, pip dependencies)."""
    conda: list[str] = []
    pip: list[str] = []
    section = None
    in_pip = False
    dep_indent = None
    for raw in (ROOT / "environment.yml").read_text().splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            section = line.split(":")[0].strip()
            in_pip = False
            continue
        if section != "dependencies":
            continue
        item = line.strip()
        assert item.startswith("- "), f"unexpected line in environment.yml: {raw!r}"
        item = item[2:].strip()
        if dep_indent is None:
            dep_indent = indent
        if indent == dep_indent:
            in_pip = item == "pip:"
            if not in_pip:
                conda.append(item)
        elif in_pip:
            pip.append(item)
        else:
            raise AssertionError(f"unexpected nesting in environment.yml: {raw!r}")
    return conda, pip


#: conda-forge names of packages whose PyPI name differs
CONDA_TO_PYPI = {"pytorch": "torch"}


def _environment_requirements() -> dict[str, str]:
    conda, _ = _environment_yml()
    out: dict[str, str] = {}
    for dep in conda:
        name, spec = _split(dep)
        name = CONDA_TO_PYPI.get(name, name)
        assert name not in out, f"{name} listed twice in environment.yml"
        out[name] = spec
    return out


def test_environment_yml_lists_the_same_packages_as_pyproject():
    env = _environment_requirements()
    assert "python" in env and "pip" in env
    env_names = set(env) - {"python", "pip"}
    assert env_names == set(_pyproject_requirements())
    _, pip = _environment_yml()
    assert pip == ["-e ."]


def test_version_lower_bounds_agree():
    env = _environment_requirements()
    pyproject = _pyproject_requirements()
    for name in set(env) & set(pyproject):
        a, b = _lower_bound(env[name]), _lower_bound(pyproject[name])
        if a is not None and b is not None:
            assert a == b, f"{name}: {env[name]} (environment.yml) vs {pyproject[name]} (pyproject)"
    requires_python = _pyproject()["project"]["requires-python"]
    assert _lower_bound(env["python"]) == _lower_bound(requires_python)


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    assert m, "README.md has no fenced code block"
    first_block = m.group(1)
    assert "python3 tasks.py app" in first_block
    assert "python3 tasks.py test" in first_block


def test_ci_script_runs_the_tests():
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    code = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert any("tasks.py test" in line for line in code)


def test_ci_script_is_executable():
    assert os.access(ROOT / ".ci" / "run", os.X_OK)


def test_the_test_command_installs_torch_as_ci_did(monkeypatch, tmp_path):
    """`python3 tasks.py test` installs the pinned CPU build of torch (once), so that a fresh
    clone runs the PyTorch loader's tests; CI relies on it instead of installing torch."""
    sys.path.insert(0, str(ROOT))
    try:
        import tasks
    finally:
        sys.path.pop(0)
    commands = []
    monkeypatch.setattr(tasks, "VENV", tmp_path)
    monkeypatch.setattr(tasks, "ensure_venv", lambda extra: tmp_path / "python")
    monkeypatch.setattr(tasks, "run", lambda cmd, env=None, cwd=None: commands.append(
        [str(c) for c in cmd]))
    assert tasks.cmd_test([]) == 0
    assert tasks.cmd_test([]) == 0  # the second time the stamp skips the install
    installs = [c for c in commands if "install" in c]
    assert installs == [[str(tmp_path / "python"), "-m", "pip", "install",
                         "--disable-pip-version-check", tasks.TORCH_REQUIREMENT]]
    assert commands.index(installs[0]) < next(
        i for i, c in enumerate(commands) if c[-2:] == ["-m", "pytest"])
    assert tasks.TORCH_REQUIREMENT.startswith("torch==")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install" not in ci and "torch==" not in ci


def test_the_app_command_warms_the_numba_cache_once_per_change_of_the_sources(
        monkeypatch, tmp_path):
    sys.path.insert(0, str(ROOT))
    try:
        import tasks
    finally:
        sys.path.pop(0)
    commands = []
    monkeypatch.setattr(tasks, "VENV", tmp_path)
    monkeypatch.setattr(tasks, "ensure_venv", lambda extra: tmp_path / "python")
    monkeypatch.setattr(tasks, "run", lambda cmd, env=None, cwd=None: commands.append(
        ([str(c) for c in cmd], cwd)))
    warm = [str(tmp_path / "python"), "-m", "dashboards.warmup"]
    digest = tasks.sources_digest()
    assert len(digest) == 16 and digest == tasks.sources_digest()
    assert tasks.cmd_app([]) == 0
    assert commands[0] == (warm, tasks.APP_DIR) and "voila" in commands[1][0]
    assert tasks.cmd_app([]) == 0  # the same sources: no warm-up
    assert [c for c, _ in commands].count(warm) == 1
    monkeypatch.setattr(tasks, "sources_digest", lambda: "changed")
    assert tasks.cmd_app([]) == 0
    assert [c for c, _ in commands].count(warm) == 2
    assert [p.name for p in tmp_path.glob(".lowentropy-warm-*")] == [".lowentropy-warm-changed"]
