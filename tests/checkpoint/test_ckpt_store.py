"""CheckpointStore: round trip, keep-K pruning, crash at every write step, rewind refusal."""

import logging
from collections.abc import Callable

import pytest
import torch

from fedsweep.checkpoint.storage import Storage
from fedsweep.checkpoint.store import CheckpointStore
from fedsweep.weights import Params

META = {"round": 2, "history": [{"accuracy": 0.5, "loss": 1.25}], "selection": {"last": [3, 1]}, "x": None}
WRITES_PER_SAVE = 5  # 3 tensor groups in make_state + meta.json + MANIFEST.json


class CrashingStorage:
    """A real storage whose `crash_at`-th write raises: the process 'dies' at that step of a save."""

    def __init__(self, inner: Storage, *, crash_at: int | None = None) -> None:
        self.inner, self.crash_at, self.writes = inner, crash_at, 0
        self.location = inner.location

    def write(self, path: str, data: bytes) -> None:
        self.writes += 1
        if self.writes == self.crash_at:
            raise OSError(f"simulated crash at write {self.writes} ({path})")
        self.inner.write(path, data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def assert_same(actual: dict[str, Params], expected: dict[str, Params]) -> None:
    assert list(actual) == list(expected)
    for group, params in expected.items():
        assert list(actual[group]) == list(params), group
        for key, tensor in params.items():
            assert actual[group][key].dtype == tensor.dtype and torch.equal(actual[group][key], tensor), key


def test_round_trip(storage: Storage, make_state: Callable) -> None:
    # Prepare
    store = CheckpointStore(storage=storage)
    state = make_state(2)

    # Execute
    store.save(round=2, tensors=state, meta=META)
    loaded = store.load_latest()

    # Assert
    assert loaded is not None and loaded.round == 2 and loaded.meta == META
    assert_same(loaded.tensors, state)
    assert storage.list("round-000002") == [
        "MANIFEST.json",
        "client_state",
        "meta.json",
        "model.safetensors",
        "server_state.safetensors",
    ]


def test_empty_store_loads_none(storage: Storage) -> None:
    # Execute / Assert
    assert CheckpointStore(storage=storage).load_latest() is None


def test_keep_k_prunes_oldest(storage: Storage, make_state: Callable) -> None:
    # Prepare
    store = CheckpointStore(storage=storage, keep=3)

    # Execute
    for r in range(1, 7):
        store.save(round=r, tensors=make_state(r), meta={"round": r})

    # Assert
    assert store.committed_rounds() == [4, 5, 6]
    assert storage.list("") == ["round-000004", "round-000005", "round-000006"]
    assert store.load_latest().round == 6


@pytest.mark.parametrize("keep", [1, 0, -3])
def test_keep_below_two_is_refused(storage: Storage, keep: int) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match=r"checkpoint\.keep must be >= 2"):
        CheckpointStore(storage=storage, keep=keep)


def test_a_save_is_this_many_writes(storage: Storage, make_state: Callable) -> None:
    # Prepare: the crash tests below cover every write step only if this count is right
    counting = CrashingStorage(storage)

    # Execute
    CheckpointStore(storage=counting).save(round=1, tensors=make_state(1), meta={})

    # Assert
    assert counting.writes == WRITES_PER_SAVE


@pytest.mark.parametrize("crash_at", range(1, WRITES_PER_SAVE + 1))
def test_crash_during_save_keeps_previous_round(
    storage: Storage, make_state: Callable, crash_at: int
) -> None:
    # Prepare
    store = CheckpointStore(storage=storage)
    store.save(round=1, tensors=make_state(1), meta={"round": 1})

    # Execute
    with pytest.raises(OSError, match="simulated crash"):
        CheckpointStore(storage=CrashingStorage(storage, crash_at=crash_at)).save(
            round=2, tensors=make_state(2), meta={"round": 2}
        )
    after_crash = CheckpointStore(storage=storage).load_latest()
    store.save(round=3, tensors=make_state(3), meta={"round": 3})

    # Assert
    assert after_crash.round == 1 and after_crash.meta == {"round": 1}
    assert_same(after_crash.tensors, make_state(1))
    assert store.committed_rounds() == [1, 3]
    assert storage.list("") == ["round-000001", "round-000003"]  # the half-written round is gone
    assert store.load_latest().round == 3


@pytest.mark.parametrize("crash_at", range(1, WRITES_PER_SAVE + 1))
def test_crash_during_first_save_then_retry(storage: Storage, make_state: Callable, crash_at: int) -> None:
    # Prepare
    crashing = CheckpointStore(storage=CrashingStorage(storage, crash_at=crash_at))
    with pytest.raises(OSError, match="simulated crash"):
        crashing.save(round=1, tensors=make_state(1), meta={"round": 1})

    # Execute
    nothing = CheckpointStore(storage=storage).load_latest()
    crashing.save(round=1, tensors=make_state(1), meta={"round": 1})  # the writer's retry

    # Assert
    assert nothing is None
    loaded = CheckpointStore(storage=storage).load_latest()
    assert loaded.round == 1
    assert_same(loaded.tensors, make_state(1))


def test_failed_prune_is_logged_and_the_save_stands(
    storage: Storage, make_state: Callable, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    store = CheckpointStore(storage=storage, keep=2)
    for r in (1, 2):
        store.save(round=r, tensors=make_state(r), meta={})

    class NoDelete(CrashingStorage):
        def delete(self, path: str) -> None:
            raise PermissionError("read-only")

    # Execute
    with caplog.at_level(logging.WARNING):
        CheckpointStore(storage=NoDelete(storage), keep=2).save(round=3, tensors=make_state(3), meta={})

    # Assert
    assert "checkpoint pruning after round-000003 failed" in caplog.text
    assert store.load_latest().round == 3


def test_resave_replaces_the_round(storage: Storage, make_state: Callable) -> None:
    # Prepare
    store = CheckpointStore(storage=storage)
    store.save(round=1, tensors=make_state(1), meta={"v": 1})

    # Execute
    store.save(round=1, tensors=make_state(9), meta={"v": 9})

    # Assert
    loaded = store.load_latest()
    assert loaded.meta == {"v": 9}
    assert_same(loaded.tensors, make_state(9))


def test_saving_behind_a_valid_round_is_refused(storage: Storage, make_state: Callable) -> None:
    # Prepare
    store = CheckpointStore(storage=storage)
    for r in (1, 2, 3):
        store.save(round=r, tensors=make_state(r), meta={})

    # Execute
    with pytest.raises(ValueError, match=r"older than the valid round-000003.*resume=false"):
        store.save(round=1, tensors=make_state(1), meta={})

    # Assert: nothing was touched
    assert store.committed_rounds() == [1, 2, 3] and store.load_latest().round == 3


def test_newer_corrupt_rounds_are_pruned_after_falling_back(storage: Storage, make_state: Callable) -> None:
    # Prepare: rounds 3 and 4 corrupt; the run resumes from 2 and saves 3 again
    store = CheckpointStore(storage=storage, keep=5)
    for r in (1, 2, 3, 4):
        store.save(round=r, tensors=make_state(r), meta={"round": r})
    for r in (3, 4):
        storage.write(f"round-00000{r}/meta.json", b'{"round": 0}')
    resumed = store.load_latest()

    # Execute
    store.save(round=3, tensors=make_state(33), meta={"round": 3})

    # Assert
    assert resumed.round == 2
    assert store.committed_rounds() == [1, 2, 3]
    assert_same(store.load_latest().tensors, make_state(33))


def test_bad_input_touches_nothing(storage: Storage, make_state: Callable) -> None:
    # Prepare
    store = CheckpointStore(storage=storage)

    # Execute / Assert
    with pytest.raises(TypeError):
        store.save(round=1, tensors=make_state(1), meta={"t": torch.zeros(1)})
    with pytest.raises(ValueError, match="tensor group '../evil'"):
        store.save(round=1, tensors={"../evil": {}}, meta={})
    assert storage.list("") == []
