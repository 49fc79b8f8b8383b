"""Shared test configuration.

Hypothesis profiles: "ci" (derandomized, 60 examples) is loaded when the CI environment
variable is set, "dev" (random, 40 examples) otherwise; LOWENTROPY_HYPOTHESIS_PROFILE=<name>
overrides both.

In CI a skipped test counts as a failure: the session ends with exit status 1 and a banner
lists the skipped tests, so a missing dependency cannot silently switch tests off.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


# Both profiles start from Hypothesis' own defaults, not from whatever profile Hypothesis
# picked on import (it auto-loads its built-in "ci" profile when CI is set).
_base = settings.get_profile("default")
settings.register_profile(
    "ci",
    parent=_base,
    derandomize=True,
    deadline=None,
    max_examples=60,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", parent=_base, deadline=None, max_examples=40)
settings.load_profile(
    os.environ.get("LOWENTROPY_HYPOTHESIS_PROFILE") or ("ci" if _in_ci() else "dev")
)


# --- in CI, skips fail the session -------------------------------------------------------

_skipped: list[tuple[str, str]] = []  # (node id, reason)


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, lineno, reason)
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _record_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):  # xfail is not a skip
        _skipped.append((report.nodeid, _skip_reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _record_skip(report)  # module-level skips, importorskip at import time


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record_skip(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _in_ci() or hasattr(session.config, "workerinput"):  # xdist workers: controller decides
        return
    if _skipped and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _in_ci() or not _skipped:
        return
    tr = terminalreporter
    title = f"CI: {len(_skipped)} SKIPPED TEST(S) - SKIPS FAIL THE RUN IN CI"
    tr.section(title, sep="!", red=True, bold=True)
    for nodeid, reason in _skipped:
        tr.write_line(f"SKIPPED {nodeid}: {reason}", red=True)
    tr.write_line("Fix the cause (e.g. a missing dependency) or remove the skip.", red=True)


# --- browser tests: a real voila server and Debian's chromium ---------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Launch Debian's chromium (playwright's own browser download is not used)."""
    from browser import CHROMIUM_ARGS, chromium_path

    path = chromium_path()
    if path is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": path, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def voila_server(tmp_path_factory):
    """The dashboards served by voila on a free loopback port, for the whole session."""
    from browser import VoilaServer

    server = VoilaServer(tmp_path_factory.mktemp("voila") / "voila.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    """A tall window, so that a screenshot shows a whole dashboard."""
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1700}}
