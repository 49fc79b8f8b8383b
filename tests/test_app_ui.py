"""What the dashboards share (ui): error messages, and the background runner whose next start
cancels the running job."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from dashboards.ui import Cancelled, Messages, Runner, Task


def looping_job(started: threading.Event, steps: list, n: int = 10_000):
    """A job that reports progress in its loop (where it can be cancelled)."""

    def job(task: Task):
        started.set()
        for i in range(n):
            time.sleep(0.001)
            steps.append(i)
            task.progress(i + 1, n)
        return "finished"

    return job


def test_the_next_start_cancels_the_running_job_in_its_loop():
    runner = Runner(Messages())
    started, steps, results = threading.Event(), [], []
    runner.start(looping_job(started, steps), results.append)
    assert started.wait(5)
    runner.start(lambda task: "second", results.append)
    runner.wait(10)
    assert results == ["second"]  # the first one's result never arrives
    assert len(steps) < 10_000  # it stopped in its loop
    assert runner.counts == {"started": 2, "done": 1, "cancelled": 1, "failed": 0}
    assert runner.bar.layout.visibility == "hidden"


def test_jobs_run_one_at_a_time():
    runner = Runner(Messages())
    running, overlap = [], []
    lock = threading.Lock()

    def job(task):
        with lock:
            running.append(1)
            overlap.append(len(running))
        try:
            for _ in range(20):
                time.sleep(0.002)
                task.check()
        finally:
            with lock:
                running.pop()
        return len(overlap)

    for _ in range(5):
        runner.start(job, lambda result: None)
    runner.wait(10)
    assert max(overlap) == 1


def test_a_delayed_start_is_replaced_before_it_runs():
    runner = Runner(Messages())
    ran, results = [], []
    runner.start(lambda task: ran.append("first") or 1, results.append, delay=5.0)
    runner.start(lambda task: ran.append("second") or 2, results.append, delay=0.01)
    runner.wait(10)
    assert ran == ["second"] and results == [2]


def test_cancel_stops_the_job_and_drops_its_result():
    runner = Runner(Messages())
    started, steps, results = threading.Event(), [], []
    runner.start(looping_job(started, steps), results.append)
    assert started.wait(5)
    runner.cancel()
    runner.wait(10)
    assert results == [] and runner.counts["cancelled"] == 1
    assert not runner.busy


def test_errors_go_to_the_messages_and_cancellation_is_silent():
    messages = Messages()
    runner = Runner(messages, synchronous=True)

    def broken(task):
        raise ValueError("bits must be at least 2")

    runner.start(broken, lambda result: None)
    assert "bits must be at least 2" in messages.widget.value
    messages.clear()

    def cancelled(task):
        task.cancel()
        task.check()

    runner.start(cancelled, lambda result: None)
    assert messages.widget.value == ""
    assert runner.counts["failed"] == 1 and runner.counts["cancelled"] == 1


def test_an_error_in_done_goes_to_the_messages():
    messages = Messages()
    runner = Runner(messages, synchronous=True)
    runner.start(lambda task: 1, lambda result: 1 / 0)
    assert "ZeroDivisionError" in messages.widget.value


def test_synchronous_mode_ignores_the_delay_and_moves_the_bar():
    runner = Runner(Messages(), synchronous=True)
    seen = []

    def job(task):
        task.progress(2, 4)
        seen.append((runner.bar.value, runner.bar.max, runner.bar.layout.visibility))
        return "ok"

    results = []
    runner.start(job, results.append, delay=60)
    assert results == ["ok"] and seen == [(2, 4, "visible")]
    assert runner.bar.layout.visibility == "hidden"


def test_the_bar_moves_at_most_every_interval_and_shows_the_last_report(monkeypatch):
    """A job reporting thousands of steps a second sends the page a few bar moves, not one
    message per step; the last report (the job's end) always shows."""
    import dashboards.ui as ui

    clock = [0.0]
    monkeypatch.setattr(ui.time, "monotonic", lambda: clock[0])
    runner = Runner(Messages(), synchronous=True)
    moves = []
    runner.bar.observe(lambda change: moves.append(change["new"]), "value")

    def job(task):
        for i in range(1, 1001):
            clock[0] += 0.001  # a report every millisecond: one second in all
            task.progress(i, 1000)
        return runner.bar.value

    results = []
    runner.start(job, results.append)
    assert results == [1000] and moves[-1] == 1000
    assert 10 <= len(moves) <= 12, moves  # the first, one per 0.1 s, the last
    assert all(b - a >= 99 for a, b in zip(moves[:-2], moves[1:-1], strict=True)), moves


def test_task_progress_takes_extra_arguments_and_checks():
    moves = []
    task = Task(lambda i, n: moves.append((i, n)))
    task.progress(1, 3, "fc1")  # the library's network_report passes a layer name
    assert moves == [(1, 3)]
    task.cancel()
    with pytest.raises(Cancelled):
        task.progress(2, 3)
    assert task.wait(0) is True


def test_an_error_shows_one_line_and_no_traceback(capfd):

    messages = Messages()

    @messages.guard
    def callback(change=None):
        raise ValueError("clusters must be at least 2")

    callback()
    assert "ValueError: clusters must be at least 2" in messages.widget.value
    assert "Traceback" not in messages.widget.value and "File " not in messages.widget.value
    assert "Traceback" in capfd.readouterr().err  # the server's log keeps it
    config = json.loads((Path(__file__).parent.parent / "app" / "voila.json").read_text())
    assert config["VoilaConfiguration"]["show_tracebacks"] is False


def test_the_warm_up_builds_every_dashboard_and_times_every_format(capsys):
    from dashboards import warmup

    assert [name for name, _ in warmup._dashboards()] == [
        "layer explorer", "network overview", "format anatomy", "entropy map"]
    assert warmup.main() == 0
    out = capsys.readouterr().out
    assert all(f"  {name}: " in out for name in ("layer explorer", "entropy map", "products"))
    assert "warm-up done" in out


def test_the_main_dashboard_waits_in_a_preheated_kernel():
    """voila keeps one kernel with the layer explorer already executed (the README's first
    command opens it); the other dashboards start a kernel per page."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent.parent))
    try:
        import tasks
    finally:
        sys.path.pop(0)
    config = json.loads((Path(__file__).parent.parent / "app" / "voila.json").read_text())
    assert config["VoilaConfiguration"]["preheat_kernel"] is True
    pools = config["VoilaKernelManager"]["kernel_pools_config"]
    assert pools["default"]["pool_size"] == 0
    assert pools[tasks.MAIN_DASHBOARD]["pool_size"] == 1
    # the pool refills (a new kernel importing the library and running the notebook, a few
    # CPU-seconds) only once the page that took its kernel has loaded, not beside it
    assert config["VoilaKernelManager"]["fill_delay"] >= 10
    # the pages show no code: the syntax-colouring extension's scripts are not loaded
    assert "jupyterlab_pygments" in config["VoilaConfiguration"]["extension_denylist"]
