"""Prefect records off the training path (server/records.py): records are written in order in the
background, a failing one is one line, and the watch says once when records are late and why,
reminds while something waits for them, and says when they caught up."""

import contextlib
import logging
import threading
import time

from server.records import DELAY_S, REMIND_S, Records, _install_retry_filter


class Lines(list):
    def __call__(self, line: str) -> None:
        self.append(line)


def test_records_are_written_in_order_and_a_failure_is_one_line() -> None:
    # Prepare: a writer whose client records the calls
    lines, made = Lines(), []
    records = Records(announce=lines, client=lambda: contextlib.nullcontext("client"))
    # Execute
    records.submit("the first", lambda client: made.append((client, 1)))
    records.submit("a broken one", lambda client: 1 / 0)
    records.submit("the last", lambda client: made.append((client, 3)))
    sent = records.finish(timeout_s=10)
    # Assert
    assert sent and made == [("client", 1), ("client", 3)]
    assert lines == ["records: a broken one not recorded in Prefect (ZeroDivisionError: division by zero)"]


def test_a_drain_keeps_the_watch_on_and_its_time_bounds_the_finish_too() -> None:
    # Prepare: a record whose call blocks until released
    lines, release = Lines(), threading.Event()
    records = Records(announce=lines, client=lambda: contextlib.nullcontext(None), watch=False)
    records.submit("a slow artifact", lambda client: release.wait(30))
    # Execute: the drain gives up after its time; a wrap-up step after it is still watched
    t0 = time.monotonic()
    drained = records.drain(timeout_s=0.5)
    step = records.wait("the last task runs and logs", phase="finishing")
    records.check(time.monotonic() + DELAY_S + 1)
    finished = records.finish(timeout_s=30)  # waits only what is left of the drain's 0.5 s
    waited = time.monotonic() - t0
    release.set()
    records.done(step)
    # Assert
    assert (drained, finished) == (False, False) and waited < 10, waited
    assert any(line.startswith("finishing (") and "the last task runs and logs" in line for line in lines)


def test_the_watch_says_records_are_late_reminds_while_training_waits_and_says_they_caught_up() -> None:
    # Prepare: a record nobody waits for, then a cell's flow run that training waits for; no retry
    # of Prefect's client seen in this process (the reason is then "slow to answer")
    _install_retry_filter().last = None
    lines = Lines()
    records = Records(announce=lines, client=lambda: contextlib.nullcontext(None), watch=False)
    waiting = threading.Event()
    t0 = time.monotonic()
    late = records.wait("a progress artifact", lambda: False)
    cell = records.wait("cell b's flow run to start", waiting.is_set)
    # Execute and Assert: nothing while within DELAY_S
    records.check(t0 + DELAY_S - 1)
    assert lines == []
    # ... one line once late, training going on; no reminder while nothing waits for them
    records.check(t0 + DELAY_S + 1)
    assert lines == ["records delayed: Prefect server slow to answer; training goes on"]
    records.check(t0 + DELAY_S + 1 + REMIND_S)
    assert len(lines) == 1
    # ... a reminder every REMIND_S once training waits
    waiting.set()
    records.check(t0 + DELAY_S + 2 + REMIND_S)
    assert (
        lines[-1].startswith("records delayed")
        and "training waits for cell b's flow run to start" in lines[-1]
    )
    records.done(late)
    records.done(cell)
    records.check(t0 + DELAY_S + 3 + REMIND_S)
    assert lines[-1].startswith("records caught up after")
    records.finish(timeout_s=5)


def test_the_reason_is_what_prefects_client_saw() -> None:
    # Prepare: Prefect's client retrying a 503 (its DEBUG message), which is not shown
    lines = Lines()
    records = Records(announce=lines, client=lambda: contextlib.nullcontext(None), watch=False)
    shown: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            shown.append(record)

    logger = logging.getLogger("prefect.client")
    handler = Keep()
    logger.addHandler(handler)
    try:
        _install_retry_filter()
        logger.debug(
            "Received response with retryable status code 503. Another attempt will be made in 65.2s. "
            "This is attempt 6/9."
        )
        token = records.wait("the sweep's flow run to start")
        records.check(time.monotonic() + DELAY_S + 1)
    finally:
        logger.removeHandler(handler)
    records.done(token)
    records.finish(timeout_s=5)
    # Assert
    assert not shown
    assert lines == [
        "records delayed: Prefect server busy (HTTP 503, next try in 65 s); "
        "training waits for the sweep's flow run to start"
    ]


def test_a_slow_start_up_step_is_said_every_few_seconds_and_is_no_record() -> None:
    # Prepare
    lines = Lines()
    records = Records(announce=lines, client=lambda: contextlib.nullcontext(None), watch=False)
    t0 = time.monotonic()
    step = records.wait("the Prefect server to start", phase="starting")
    # Execute
    records.check(t0 + DELAY_S - 1)
    records.check(t0 + DELAY_S + 1)
    records.check(t0 + DELAY_S + 2)
    records.check(t0 + DELAY_S + 1 + REMIND_S)
    records.done(step)
    records.check(t0 + DELAY_S + 2 + REMIND_S)
    records.finish(timeout_s=5)
    # Assert: a line when late, one more a reminder later, nothing about records
    assert len(lines) == 2 and all(line.startswith("starting (") for line in lines)
    assert lines[0].endswith("waiting for the Prefect server to start")


def test_short_steps_in_a_row_are_said_once_the_phase_is_silent_for_a_few_seconds() -> None:
    # Prepare: start-up steps of 3 s each (each under DELAY_S), then a wrap-up step
    lines = Lines()
    records = Records(announce=lines, client=lambda: contextlib.nullcontext(None), watch=False)
    t0 = time.monotonic()
    # Execute
    data = records.wait("the data to be ready", phase="starting")
    records.check(t0 + 3)
    records.done(data)
    server = records.wait("the Prefect server to start", phase="starting")
    records.check(t0 + 4)
    records.check(t0 + DELAY_S + 0.7)
    records.done(server)
    mlflow = records.wait("MLflow's database", phase="starting")
    records.check(t0 + DELAY_S + 1.5)
    records.done(mlflow)
    plots = records.wait("the sweep's metrics and plots in MLflow", phase="finishing")
    records.check(time.monotonic() + DELAY_S - 1)
    records.check(time.monotonic() + DELAY_S + 1)
    records.done(plots)
    records.finish(timeout_s=5)
    # Assert: one start-up line, dated from the phase's start, naming the step waited for; one wrap-up
    assert len(lines) == 2, lines
    assert lines[0] == f"starting ({round(DELAY_S + 0.7)} s): waiting for the Prefect server to start"
    assert lines[1].startswith("finishing (") and lines[1].endswith("the sweep's metrics and plots in MLflow")


def test_the_start_up_is_silent_from_its_line_not_from_its_first_step(monkeypatch) -> None:
    # Prepare: the start-up line printed 4 s before the first step (Prefect imported meanwhile)
    from server import records as module

    lines = Lines()
    records = Records(announce=lines, client=lambda: contextlib.nullcontext(None), watch=False)
    t0 = time.monotonic()
    monkeypatch.setattr(module, "_START_LINE", [t0 - 4])
    step = records.wait("the data to be ready", phase="starting")
    # Execute
    records.check(t0 + 0.5)
    records.check(t0 + 2.2)
    records.done(step)
    records.finish(timeout_s=5)
    # Assert: nothing 4.5 s after the line, a line 6 s after it
    assert lines == ["starting (6 s): waiting for the data to be ready"]


def test_a_second_job_has_phases_of_its_own(monkeypatch) -> None:
    # Prepare: a job's start-up said long ago; a second job's line printed now (a `-m` command)
    from server import records as module

    lines = Lines()
    records = Records(announce=lines, client=lambda: contextlib.nullcontext(None), watch=False)
    t0 = time.monotonic()
    monkeypatch.setattr(module, "_START_LINE", [t0 - 100])
    records.done(records.wait("the data to be ready", phase="starting"))
    module._START_LINE[:] = [t0]
    # Execute
    step = records.wait("the data to be ready", phase="starting")
    records.check(t0 + 2)
    records.check(t0 + DELAY_S + 1)
    records.done(step)
    records.finish(timeout_s=5)
    # Assert: nothing before the second job's start-up was silent for DELAY_S, dated from its own line
    assert lines == [f"starting ({round(DELAY_S + 1)} s): waiting for the data to be ready"]
