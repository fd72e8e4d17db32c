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
