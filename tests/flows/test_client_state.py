"""Per-client state through the real round loop: created once, finished once per round, handed to
aggregation before and after, committed with the round, restored after an outage. After a kill -9
(through the real command, in a grid with every other kind of state): test_resume_chaos.py."""

from pathlib import Path

from fedsweep.checkpoint.storage import open_storage
from fedsweep.checkpoint.store import CheckpointStore

COUNTING = (
    "strategy._target_=counting.Counting",
    "runner.progress=false",
    "num_clients=4",
    "clients_per_round=4",
    "faults=schedule",
    "faults.clients=[0]",
    "faults.fail_at=2",
    "faults.recover_at=4",
)


def final_state(cell_dir: Path) -> tuple[list[int], dict]:
    """(the server's visit counts, the client-state index) of the newest checkpoint."""
    latest = CheckpointStore(storage=open_storage(str(cell_dir / "checkpoints"))).load_latest()
    return latest.tensors["server_state"]["visits"].tolist(), latest.meta["client_states"]


def test_client_state_persists_across_rounds_and_outages(run_cell_here, tmp_path) -> None:
    # Execute: client 0 is down in rounds 2 and 3 (the Counting strategy raises if its state is lost)
    row, history = run_cell_here(*COUNTING, "rounds=5", where="a")
    # Assert: client 0 finished rounds 1, 4 and 5; the others all five
    (cell_dir,) = (tmp_path / "a").iterdir()
    visits, index = final_state(cell_dir)
    assert visits == [3, 5, 5, 5]
    assert [h["clients_selected"] for h in history] == [4, 3, 3, 4, 4]
    assert sorted(index) == ["0", "1", "2", "3"] and index["0"]["key"] == "c000000-r000005"
    # Disk: only entries that a kept checkpoint names are left (keep=3: rounds 3, 4, 5)
    kept = CheckpointStore(storage=open_storage(str(cell_dir / "checkpoints"))).kept_metas()
    named = {ref["key"] + ".safetensors" for meta in kept for ref in meta["client_states"].values()}
    assert {p.name for p in (cell_dir / "clients").iterdir()} == named
    assert len(named) <= 4 * 3


def test_a_failed_client_keeps_its_state(run_cell_here, tmp_path) -> None:
    # Execute: client 0 is selectable but fails (NodeDown) in rounds 2 and 3
    run_cell_here(*COUNTING, "rounds=4", "faults.mode=fail", where="b")
    # Assert
    (cell_dir,) = (tmp_path / "b").iterdir()
    visits, _ = final_state(cell_dir)
    assert visits == [2, 4, 4, 4]


def test_a_selector_observes_every_selected_client_and_its_state_is_checkpointed(
    run_cell_here, tmp_path
) -> None:
    # Execute: client 0 fails in rounds 2 and 3; the selector counts what it sees
    run_cell_here(
        *COUNTING,
        "rounds=4",
        "faults.mode=fail",
        "selection._target_=counting.CountingSelector",
        "+selection.num_clients=4",
        where="c",
    )
    # Assert
    (cell_dir,) = (tmp_path / "c").iterdir()
    latest = CheckpointStore(storage=open_storage(str(cell_dir / "checkpoints"))).load_latest()
    state = latest.tensors["selection"]
    assert state["ok"].tolist() == [2, 4, 4, 4] and state["failed"].tolist() == [2, 0, 0, 0]
    # each client takes the same number of steps every round it trains (its data size is fixed)
    assert all(s > 0 and s % ok == 0 for s, ok in zip(state["steps"].tolist(), state["ok"].tolist()))
