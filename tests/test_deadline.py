"""fedsweep/rounds/deadline.py: a round's deadline, and the record of the clients it cut off."""

import time

import pytest
from sweep_cli import slowdown  # upper bounds on wall-clock time scale with the machine's load

from fedsweep.checkpoint.storage import CheckpointError
from fedsweep.checkpoint.store import round_dir
from fedsweep.rounds import deadline as deadlines


def test_no_deadline_without_round_timeout_s(cell_config, make_cell) -> None:
    assert deadlines.start(make_cell(cell_config()), 1) is None


def test_a_record_is_read_back_by_the_replay_of_its_round_only(cell_config, make_cell) -> None:
    # Prepare
    cell = make_cell(cell_config("aggregation.round_timeout_s=3"))
    first = deadlines.start(cell, 2)
    # Execute: round 2 cut clients 3 and 1; a replay of it cuts client 0 as well
    deadlines.record(cell, first, {3, 1})
    replay = deadlines.start(cell, 2)
    deadlines.record(cell, replay, {0})
    # Assert: a fresh deadline each time; the replay knows what was cut; round 3 has no record
    assert first.seconds == 3.0 and 2.5 < first.left() <= 3.0 and not first.passed()
    assert replay.earlier == {1, 3} and replay.at >= first.at
    assert deadlines.cut_off(cell, 2) == {0, 1, 3}
    assert deadlines.start(cell, 3).earlier == frozenset()


def test_cut_clients_fail_with_the_same_words_in_every_run(cell_config, make_cell) -> None:
    # Prepare
    deadline = deadlines.start(make_cell(cell_config("aggregation.round_timeout_s=2.5")), 1)
    # Execute
    failures = deadline.failures({4, 2})
    # Assert: nothing that depends on timing (aggregation hashes these records)
    assert failures == [
        {"client": c, "kind": "deadline", "message": "not done by the round deadline (2.5 s)", "retries": 0}
        for c in (2, 4)
    ]


def test_a_deadline_passes(cell_config, make_cell) -> None:
    deadline = deadlines.start(make_cell(cell_config("aggregation.round_timeout_s=0.05")), 1)
    time.sleep(0.1)
    assert deadline.passed() and deadline.left() < 0


@pytest.mark.parametrize(
    "text", [b"{", b'{"round": 1, "clients": ["x"]}', b'{"round": 9, "clients": [1]}', b"[]"]
)
def test_a_damaged_record_is_refused_naming_the_file(cell_config, make_cell, text: bytes) -> None:
    # Prepare
    cell = make_cell(cell_config("aggregation.round_timeout_s=3"))
    cell.stores.blobs.storage.write(f"{round_dir(1)}/{deadlines.RECORD}", text)
    # Execute / Assert
    with pytest.raises(CheckpointError, match="round-000001/deadline.json is not a valid deadline record"):
        deadlines.cut_off(cell, 1)


def _sleep_in_steps(seconds: float) -> None:
    for _ in range(int(seconds / 0.01)):
        time.sleep(0.01)


def test_an_attempt_is_cut_by_the_deadline_or_the_task_timeout_whichever_comes_first() -> None:
    from fedsweep.failures import DeadlinePassed, retryable
    from tasks.train import TaskRunTimeoutError, bounded

    # Execute / Assert: no deadline, nothing bounds the attempt here (Prefect's timeout_seconds does)
    with bounded(None, 0.1):
        _sleep_in_steps(0.2)
    # the deadline first: DeadlinePassed, which is not retried
    tick = time.monotonic()
    with pytest.raises(DeadlinePassed) as cut:
        with bounded(time.monotonic() + 0.3, 5.0):
            _sleep_in_steps(10)
    assert time.monotonic() - tick < 3 * slowdown() and not retryable(cut.value)
    # the task timeout first: a timeout like Prefect's, retried
    with pytest.raises(TaskRunTimeoutError) as timed_out:
        with bounded(time.monotonic() + 30, 0.2):
            _sleep_in_steps(10)
    assert retryable(timed_out.value)
    # a retry that starts after the deadline does no work
    with pytest.raises(DeadlinePassed, match="before this attempt started"):
        with bounded(time.monotonic() - 0.1, 5.0):
            raise AssertionError("the attempt ran")
