"""The round library (fedsweep/rounds/) without Prefect: the round's `available` ids, and the
selector's state handed to `observe` in place unless the previous round's commit may still be
writing it."""

import torch

from fedsweep.rounds.plan import RoundPlan
from fedsweep.rounds.report import after_round
from fedsweep.rounds.state import CellState


def _plan(selection: dict[str, torch.Tensor]) -> RoundPlan:
    return RoundPlan(
        round=2,
        available=4,
        selected=(1, 3),
        epochs={},
        states={},
        failures=(),
        selection=selection,
        client_states={},
    )


def _results() -> list[dict]:
    return [
        {
            "client": c,
            "num_samples": 5,
            "loss": 0.5,
            "steps": 1,
            "sketch": [float(c)] * 4,
            "client_state": None,
        }
        for c in (1, 3)
    ]


def test_available_is_an_increasing_int64_tensor_of_the_online_clients(cell_config, make_cell) -> None:
    # Prepare: client 2 is down in round 2 (faults hide it from selection)
    cell = make_cell(
        cell_config("faults=schedule", "faults.clients=[2]", "faults.fail_at=2", "faults.recover_at=3")
    )
    # Execute
    first, second = cell.fleet.available(1), cell.fleet.available(2)
    # Assert
    assert first.dtype == torch.int64 and first.tolist() == [0, 1, 2, 3]
    assert second.tolist() == [0, 1, 3]


def test_observe_updates_the_state_in_place_unless_a_commit_is_in_flight(cell_config, make_cell) -> None:
    # Prepare
    cell = make_cell(cell_config("selection=divfl", "selection.sketch_dim=4"))
    state = CellState(round=1, start={})
    held = cell.methods.selector.initial_state(4)
    kept = {k: v.clone() for k, v in held.items()}
    # Execute: the previous round's commit may still be writing `held`
    copied = after_round(
        cell, state, _plan(held), {}, _results(), [], kept=True, row={"round": 2}, committing=True
    )
    # Assert: `held` untouched, the new state has the clients' sketches
    assert all(torch.equal(held[k], kept[k]) for k in held)
    assert (
        copied.selection["seen"].tolist() == [0, 2, 0, 2]
        and copied.selection["sketch"][3].tolist() == [3.0] * 4
    )
    # Execute: nothing is being written: the same tensors are updated
    owned = after_round(
        cell, state, _plan(held), {}, _results(), [], kept=True, row={"round": 2}, committing=False
    )
    # Assert
    assert owned.selection["sketch"] is held["sketch"] and held["seen"].tolist() == [0, 2, 0, 2]
    assert all(torch.equal(owned.selection[k], copied.selection[k]) for k in held)


def test_client_seconds_of_a_few_clients_equal_the_whole_fleets_bitwise(cell_config, make_cell) -> None:
    # Prepare
    cell = make_cell(cell_config("systems=fleet", "num_clients=6", "local_epochs=null", "local_steps=3"))
    planned = torch.zeros(6, dtype=torch.int64)
    planned[torch.tensor([1, 4])] = torch.tensor([5, 2])
    # Execute
    seconds = cell.fleet.client_seconds({4: 2, 1: 5})
    whole = cell.fleet.devices.seconds(cell.fleet.work_samples(planned), cell.methods.model_bytes)
    # Assert: computed for the two clients alone, the same floats
    assert seconds == {1: whole[1].item(), 4: whole[4].item()}
