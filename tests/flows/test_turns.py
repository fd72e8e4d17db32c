"""Which cells start and train (flows/cell_flow.py's Turns): flow runs start in the grid's order, one
ahead of those training; a ready cell trains before one whose flow run is not ready; a halt turns the
waiting away."""

import threading
import time

from flows.turns import Turns


def test_cells_start_one_ahead_and_a_slow_start_does_not_hold_up_a_ready_cell() -> None:
    # Prepare
    turns, order, admitted = Turns(1), [], []

    def cell(index: int, starting_s: float) -> None:
        assert turns.admit(index)
        admitted.append(index)
        time.sleep(starting_s)  # its flow run starting
        with turns.turn(index) as granted:
            assert granted
            order.append(index)
            time.sleep(0.05)
        turns.trained()

    # Execute: cell 1's flow run is slow to start
    threads = [threading.Thread(target=cell, args=(i, s)) for i, s in enumerate((0.0, 1.0, 0.0))]
    for thread in threads:
        thread.start()
    time.sleep(0.02)
    early = list(admitted)
    for thread in threads:
        thread.join()
    # Assert: two started at first (one training, one ahead); once cell 0 had trained, cell 2 started
    # and trained while cell 1 was still starting
    assert early == [0, 1] and order == [0, 2, 1]


def test_training_is_starved_while_no_cell_is_ready() -> None:
    turns = Turns(1)
    assert turns.admit(0)
    assert turns.starved()
    with turns.turn(0):
        assert not turns.starved()


def test_a_halt_turns_the_waiting_away() -> None:
    turns = Turns(1)
    assert turns.admit(0) and turns.admit(1)
    outcome = {}

    def waiting() -> None:
        with turns.turn(1) as granted:
            outcome["granted"] = granted

    with turns.turn(0) as granted:
        assert granted
        other = threading.Thread(target=waiting)
        other.start()
        turns.halt()
        other.join(5)
    assert outcome == {"granted": False} and not turns.admit(2)


def test_a_stopped_cell_halts_the_sweep_before_its_turn_is_free(monkeypatch) -> None:
    # Prepare: cell 0 trains and is stopped (the memory guard's row); cell 1, started ahead, waits
    # for its turn. run_cell stands in for a real cell (tests/flows/test_sweep_e2e.py runs the guard).
    from flows import cell_flow
    from flows.turns import CellStart

    turns, outcome = Turns(1), {}
    assert turns.admit(0) and turns.admit(1)

    def waiting() -> None:
        with turns.turn(1) as granted:
            outcome["granted"] = granted

    def stopped_cell(*_args) -> dict:
        threading.Thread(target=waiting).start()
        time.sleep(0.3)  # cell 1 is waiting for the turn
        return {"cell": "a", "status": "STOPPED", "message": "memory"}

    monkeypatch.setattr(cell_flow, "run_cell", stopped_cell)
    monkeypatch.setattr(cell_flow, "open_cell", lambda _dir: None)
    plan = {"name": "a", "dir": "unused", "params": {}}
    # Execute
    state = cell_flow._play(plan, {}, CellStart(turns, 0, waiting=0, key="a"))
    deadline = time.monotonic() + 5
    while "granted" not in outcome and time.monotonic() < deadline:
        time.sleep(0.01)
    # Assert: the cell ended Cancelled (a clean stop), and the waiting cell was turned away, never granted
    assert state.is_cancelled() and outcome == {"granted": False}
