"""BackgroundWriter: one job in flight, bounded waits, retries then reports, newest job decides."""

import logging
import threading
import time

import pytest
from sweep_cli import slowdown  # upper bounds on wall-clock time scale with the machine's load

from fedsweep.checkpoint.writer import BackgroundWriter


def test_at_most_one_job_in_flight() -> None:
    # Prepare
    release, started = threading.Event(), threading.Event()
    active, peak, order = [0], [0], []
    lock = threading.Lock()

    def job(name: str, block: bool) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        started.set()
        if block:
            assert release.wait(timeout=5)
        order.append(name)
        with lock:
            active[0] -= 1

    writer = BackgroundWriter(timeout_s=0.2)
    writer.submit(lambda: job("a", True))
    assert started.wait(timeout=5)

    # Execute
    t0 = time.monotonic()
    in_time = writer.submit(lambda: job("b", False))
    waited = time.monotonic() - t0
    b_ran_early = "b" in order
    release.set()
    flushed = writer.flush(timeout_s=5)

    # Assert
    assert not in_time and 0.2 <= waited < 2 * slowdown()  # back-pressure, bounded
    assert not b_ran_early and order == ["a", "b"] and peak[0] == 1
    assert flushed and writer.close(timeout_s=5)


def test_submit_waits_for_the_previous_job() -> None:
    # Prepare
    writer = BackgroundWriter(timeout_s=5)
    done = []

    # Execute
    writer.submit(lambda: (time.sleep(0.1), done.append(1)))
    in_time = writer.submit(lambda: done.append(2))

    # Assert
    assert in_time and done[:1] == [1]  # the first had finished before submit returned
    assert writer.close(timeout_s=5) and done == [1, 2]


def test_retries_then_succeeds() -> None:
    # Prepare
    calls = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("transient")

    writer = BackgroundWriter(max_retries=2, backoff_s=0.01)

    # Execute
    writer.submit(flaky)
    ok = writer.flush(timeout_s=5)

    # Assert
    assert ok and len(calls) == 3 and not writer.errors


def test_persistent_failure_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    # Prepare
    calls = []

    def broken() -> None:
        calls.append(1)
        raise OSError("disk full")

    writer = BackgroundWriter(max_retries=2, backoff_s=0.01)

    # Execute
    with caplog.at_level(logging.WARNING):
        writer.submit(broken)
        ok = writer.flush(timeout_s=5)

    # Assert
    assert not ok and len(calls) == 3
    assert [type(e) for e in writer.errors] == [OSError] and writer.last_error is writer.errors[0]
    assert "checkpoint write failed after 3 attempt(s): OSError: disk full" in caplog.text


def test_newer_success_supersedes_older_failure() -> None:
    # Prepare
    writer = BackgroundWriter(max_retries=0)

    def broken() -> None:
        raise OSError("disk full")

    writer.submit(broken)
    assert not writer.flush(timeout_s=5)

    # Execute
    writer.submit(lambda: None)
    ok = writer.flush(timeout_s=5)

    # Assert
    assert ok and writer.last_error is None and len(writer.errors) == 1  # history is kept


def test_waiting_job_cuts_retries_short() -> None:
    # Prepare: the first job fails only after a newer job is already waiting
    release, calls = threading.Event(), []

    def fails_late() -> None:
        calls.append(1)
        release.wait(timeout=5)
        raise OSError("disk full")

    writer = BackgroundWriter(max_retries=5, timeout_s=0.05, backoff_s=1.0)
    writer.submit(fails_late)
    writer.submit(lambda: None)  # times out and waits as the pending job

    # Execute
    release.set()
    ok = writer.flush(timeout_s=5)

    # Assert
    assert ok and len(calls) == 1 and len(writer.errors) == 1


def test_newer_pending_job_replaces_older_pending() -> None:
    # Prepare: a hung job, then two submits that time out: the second replaces the first
    release, ran = threading.Event(), []
    writer = BackgroundWriter(timeout_s=0.05)
    writer.submit(lambda: release.wait(timeout=5))

    # Execute
    writer.submit(lambda: ran.append("older"))
    writer.submit(lambda: ran.append("newer"))
    release.set()

    # Assert
    assert writer.flush(timeout_s=5) and ran == ["newer"]


def test_flush_is_bounded() -> None:
    # Prepare
    release = threading.Event()
    writer = BackgroundWriter()
    writer.submit(lambda: release.wait(timeout=5))

    # Execute
    t0 = time.monotonic()
    ok = writer.flush(timeout_s=0.1)
    waited = time.monotonic() - t0
    release.set()

    # Assert
    assert not ok and waited < 2 * slowdown()
    assert writer.flush(timeout_s=5)


def test_close_then_submit_is_refused() -> None:
    # Prepare
    with BackgroundWriter() as writer:
        writer.submit(lambda: None)

    # Execute / Assert
    assert not writer._thread.is_alive()
    with pytest.raises(RuntimeError, match="after close"):
        writer.submit(lambda: None)


def test_busy_while_a_job_runs_past_a_timed_out_flush() -> None:
    # Prepare
    release, started = threading.Event(), threading.Event()
    writer = BackgroundWriter(timeout_s=5)
    idle_before = writer.busy()

    def job() -> None:
        started.set()
        assert release.wait(timeout=5)

    writer.submit(job)
    assert started.wait(timeout=5)
    # Execute
    timed_out = not writer.flush(timeout_s=0.05)
    busy_then = writer.busy()
    release.set()
    flushed = writer.flush(timeout_s=5)
    # Assert
    assert not idle_before and timed_out and busy_then
    assert flushed and not writer.busy()
    writer.close()
