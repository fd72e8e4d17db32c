"""fedsweep/deadline.py: a round's deadline, and the record of the clients it cut off."""

import time

import pytest

from fedsweep import deadline as deadlines
from fedsweep.checkpoint.storage import CheckpointError
from fedsweep.checkpoint.store import round_dir


def test_no_deadline_without_round_timeout_s(cell_config, make_env) -> None:
    assert deadlines.start(make_env(cell_config()), 1) is None


def test_a_record_is_read_back_by_the_replay_of_its_round_only(cell_config, make_env) -> None:
    # Prepare
    env = make_env(cell_config("aggregation.round_timeout_s=3"))
    first = deadlines.start(env, 2)
    # Execute: round 2 cut clients 3 and 1; a replay of it cuts client 0 as well
    deadlines.record(env, first, {3, 1})
    replay = deadlines.start(env, 2)
    deadlines.record(env, replay, {0})
    # Assert: a fresh deadline each time; the replay knows what was cut; round 3 has no record
    assert first.seconds == 3.0 and 2.5 < first.left() <= 3.0 and not first.passed()
    assert replay.earlier == {1, 3} and replay.at >= first.at
    assert deadlines.cut_off(env, 2) == {0, 1, 3}
    assert deadlines.start(env, 3).earlier == frozenset()


def test_cut_clients_fail_with_the_same_words_in_every_run(cell_config, make_env) -> None:
    # Prepare
    deadline = deadlines.start(make_env(cell_config("aggregation.round_timeout_s=2.5")), 1)
    # Execute
    failures = deadline.failures({4, 2})
    # Assert: nothing that depends on timing (aggregation hashes these records)
    assert failures == [
        {"client": c, "kind": "deadline", "message": "not done by the round deadline (2.5 s)", "retries": 0}
        for c in (2, 4)
    ]


def test_a_deadline_passes(cell_config, make_env) -> None:
    deadline = deadlines.start(make_env(cell_config("aggregation.round_timeout_s=0.05")), 1)
    time.sleep(0.1)
    assert deadline.passed() and deadline.left() < 0


@pytest.mark.parametrize("text", [b"{", b'{"round": 1, "clients": ["x"]}', b'{"round": 9, "clients": [1]}', b"[]"])
def test_a_damaged_record_is_refused_naming_the_file(cell_config, make_env, text: bytes) -> None:
    # Prepare
    env = make_env(cell_config("aggregation.round_timeout_s=3"))
    env.blobs.storage.write(f"{round_dir(1)}/{deadlines.RECORD}", text)
    # Execute / Assert
    with pytest.raises(CheckpointError, match="round-000001/deadline.json is not a valid deadline record"):
        deadlines.cut_off(env, 1)
