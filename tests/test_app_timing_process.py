"""Live timing in a worker process that a refresh stops (``dashboards.timing_process``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from dashboards.timing_process import TimingProcess, available
from dashboards.ui import Cancelled, Task

import lowentropy as le
from lowentropy.synthetic import synthetic_layer

APP = Path(__file__).resolve().parent.parent / "app"


def _state(pid: int) -> str:
    """The process's state letter in /proc (``T``: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _stopped(pid: int, want: bool, timeout: float = 10.0) -> bool:
    """Whether the process reaches the state asked for (a signal arrives a little after
    ``kill`` returns)."""
    deadline = time.monotonic() + timeout
    while (_state(pid) == "T") != want:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture(scope="module")
def worker():
    w = TimingProcess()
    yield w
    w.close()


def test_the_worker_times_every_format_from_codes_or_matrix(worker):
    W = synthetic_layer((48, 160), keep=0.3, levels=8)
    q = le.quantize(W, method="kmeans", clusters=7, return_codes=True)
    for source in ((q.codes, q.codebook), q.to_dense()):
        result, notes = worker.run(source, batch=2, budget=0.05, task=Task())
        assert set(result.timings) == set(le.FORMATS) | {"scipy_csr"}
        assert notes == {} and result.batch == 2 and result.shape == W.shape
        assert all(t.median > 0 for t in result.timings.values())


def test_the_worker_reports_progress_at_most_every_interval(worker):
    """Hundreds of product rounds a second, a progress message every 0.05 s at most."""
    from dashboards.timing_process import PROGRESS_INTERVAL_S

    W = synthetic_layer((48, 160), keep=0.3, levels=8)
    reports = []
    start = time.monotonic()
    worker.run(W, batch=1, budget=0.3, task=Task(lambda i, n: reports.append(i)))
    seconds = time.monotonic() - start
    assert reports, "no progress reported"
    assert len(reports) <= seconds / PROGRESS_INTERVAL_S + 2, (len(reports), seconds)


def test_a_paused_worker_is_stopped_until_resumed():
    W = synthetic_layer((512, 4096), keep=0.2, levels=16)
    worker = TimingProcess()  # its own: a failure here must not leave a shared one stopped
    done: list = []
    thread = threading.Thread(
        target=lambda: done.append(worker.run(W, batch=1, budget=2.0, task=Task())))
    try:
        thread.start()
        time.sleep(0.2)
        worker.pause()
        assert _stopped(worker._process.pid, True)
        time.sleep(0.5)
        assert done == [] and thread.is_alive()  # a timing of at least 2 s, held
        worker.resume()
        assert _stopped(worker._process.pid, False)
        thread.join(120)
        assert done and set(done[0][0].timings) >= set(le.FORMATS)
    finally:
        worker.close()  # a waiting run() then ends with an error
        thread.join(10)


def test_a_cancelled_timing_stops_at_once_and_the_next_one_runs(worker):
    W = synthetic_layer((512, 4096), keep=0.2, levels=16)
    task = Task()
    threading.Timer(0.2, task.cancel).start()
    start = time.perf_counter()
    with pytest.raises(Cancelled):
        worker.run(W, batch=1, budget=5.0, task=task)
    assert time.perf_counter() - start < 2.0
    small = synthetic_layer((32, 64), keep=0.5, levels=4)
    result, _ = worker.run(small, batch=1, budget=0.02, task=Task())
    assert result.shape == (32, 64)  # the replaced job's answer was not taken for this one


def test_errors_in_the_worker_reach_the_caller(worker):
    with pytest.raises(ValueError, match="NaN"):
        worker.run(np.full((4, 4), np.nan, np.float32), batch=1, budget=0.01, task=Task())
    result, _ = worker.run(np.eye(4, dtype=np.float32), batch=1, budget=0.01, task=Task())
    assert result.shape == (4, 4)


def test_processes_can_be_stopped_here():
    assert available()  # POSIX; the dashboards time in their own process elsewhere


def test_close_kills_a_stopped_worker():
    w = TimingProcess()
    w.pause()
    w.close()
    assert not w.alive


def test_a_script_that_times_at_top_level_is_not_run_again_by_its_worker(tmp_path):
    script = tmp_path / "explore.py"  # a script, not a notebook: no __main__ guard
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(APP)!r})
        import numpy as np
        from dashboards.timing_process import TimingProcess
        from dashboards.ui import Task
        print("started", flush=True)
        w = TimingProcess()
        result, notes = w.run(np.eye(8, dtype=np.float32), batch=1, budget=0.01, task=Task())
        print("timed", sorted(result.timings)[0], flush=True)
        w.close()
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300, check=True)
    assert out.stdout.split() == ["started", "timed", "cer"]


def test_a_stopped_worker_dies_with_the_dashboard_process(tmp_path):
    pid_file = tmp_path / "pid"
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(APP)!r})
        import numpy as np
        from dashboards.timing_process import TimingProcess
        from dashboards.ui import Task
        w = TimingProcess()
        w.run(np.eye(4, dtype=np.float32), batch=1, budget=0.01, task=Task())
        w.pause()
        open({str(pid_file)!r}, "w").write(str(w._process.pid))
        os._exit(0)  # no clean-up: as when the kernel is killed
    """)
    # no pipes to the child: a worker left alive would hold them open
    subprocess.run([sys.executable, "-c", script], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=300, check=True)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if _state(pid) == "Z":  # dead, not yet reaped
                return
        except FileNotFoundError:
            return
        time.sleep(0.1)
    os.kill(pid, 9)
    pytest.fail("the stopped worker outlived its parent")
