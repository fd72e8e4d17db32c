"""Local work in steps and lr schedules (fedsweep/schedule.py), alone and through the round's steps."""

import math

import pytest
import torch

from fedsweep.config import ConfigError, validate
from fedsweep.grid import cell_key
from fedsweep.rounds.blobs import start_round
from fedsweep.rounds.work import client_task, planned_work, tasks_for
from fedsweep.schedule import chunks_for, lr_at, steps_in_chunk
from fedsweep.strategies.base import Strategy
from fedsweep.strategies.fedavg import FedAvg


def test_lr_step_decay_by_round() -> None:
    # Execute: milestones [2, 4], gamma 0.5, base 0.8 (exact in binary)
    lrs = [lr_at(0.8, round=r, milestones=[2, 4], gamma=0.5) for r in range(1, 7)]
    # Assert: milestone m decays from round m + 1 (MultiStepLR stepped once per round)
    assert lrs == [0.8, 0.8, 0.4, 0.4, 0.2, 0.2]
    assert lr_at(0.05, round=100, milestones=[], gamma=0.1) == 0.05


@pytest.mark.parametrize(
    ("steps", "n", "bs", "chunks", "per_chunk"),
    [
        (7, 10, 4, 3, [3, 3, 1]),  # B = 3 batches a pass: 3 + 3 + 1
        (3, 10, 4, 1, [3]),  # one pass, all of it
        (2, 10, 4, 1, [2]),  # cut inside the first pass
        (5, 0, 4, 1, [0]),  # no data: one empty chunk
    ],
)
def test_steps_cycle_through_the_data_in_epoch_sized_chunks(steps, n, bs, chunks, per_chunk) -> None:
    assert chunks_for(steps, num_samples=n, batch_size=bs) == chunks
    assert [steps_in_chunk(c, steps=steps, num_samples=n, batch_size=bs) for c in range(chunks)] == per_chunk


@pytest.mark.parametrize("overrides", [["local_steps=5"], ["local_epochs=null"]])
def test_local_steps_and_epochs_are_exclusive(cell_config, overrides) -> None:
    # Execute / Assert: both set, or neither
    with pytest.raises(
        ConfigError, match=r"^local_steps and local_epochs are exclusive: set one \(got local_steps="
    ):
        validate(cell_config(*overrides), plugins=False)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("local_steps=0", "local_steps must be >= 1"),
        ("lr_schedule.milestones=[3,2]", "lr_schedule.milestones must be increasing rounds >= 1"),
        ("lr_schedule.gamma=0", "lr_schedule.gamma must be > 0"),
    ],
)
def test_bad_local_steps_and_schedules_are_refused(cell_config, override, message) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(cell_config("local_epochs=null", "local_steps=3", override), plugins=False)


def test_unset_knobs_keep_the_cell_key_set_ones_change_it(cell_config) -> None:
    # Prepare
    plain = cell_config()
    stripped = {k: v for k, v in plain.items() if k not in ("local_steps", "lr_schedule")}
    # Assert: a config from before these knobs existed has the same key; setting one changes it
    assert cell_key(plain) == cell_key(stripped)
    assert cell_key(cell_config("lr_schedule.milestones=[3]")) != cell_key(plain)
    assert cell_key(cell_config("local_epochs=null", "local_steps=3")) != cell_key(plain)


class _Recording(FedAvg):
    """FedAvg that records what finish_client is given."""

    seen: list[tuple[int, float]] = []

    def finish_client(self, *, params, global_params, server_state, client_state, steps, lr):
        _Recording.seen.append((steps, lr))
        return client_state


@pytest.mark.parametrize("tau", [1, 5, 13])
def test_a_client_runs_exactly_local_steps_and_finish_client_sees_them(cell_config, make_cell, tau) -> None:
    # Prepare: batch 16 over a synthetic client; tau within, at and past one pass
    cell = make_cell(
        cell_config(
            "local_epochs=null",
            f"local_steps={tau}",
            "lr=0.08",
            "lr_schedule.milestones=[1]",
            "lr_schedule.gamma=0.5",
        ),
        where=f"t{tau}",
    )
    object.__setattr__(cell.methods, "strategy", _Recording())
    _Recording.seen.clear()
    start = start_round(cell, round=2, params=cell.methods.initial_params, server_state={})
    client = 0
    n, per_pass = (
        int(cell.data.clients[client].numel()),
        math.ceil(int(cell.data.clients[client].numel()) / 16),
    )
    chunks = tasks_for(cell, client, planned_work(cell, 2, client))
    # Execute
    ref = None
    for chunk in range(chunks):
        ref = client_task(
            cell,
            round=2,
            client=client,
            epoch=chunk,
            epochs=chunks,
            global_ref=start["global"],
            input_ref=ref,
            state_ref=None,
        )
    # Assert: tau steps in ceil(tau / B) chunks; round 2 trains at 0.08 * 0.5
    assert n > 0 and chunks == math.ceil(tau / per_pass)
    assert ref["steps"] == tau and _Recording.seen == [(tau, 0.04)]
    assert isinstance(cell.methods.strategy, Strategy)


def test_local_config_follows_the_schedule_and_is_unchanged_without_one(cell_config, make_cell) -> None:
    cell = make_cell(
        cell_config("lr=0.5", "lr_schedule.milestones=[2,3]", "lr_schedule.gamma=0.5"), where="s"
    )
    plain = make_cell(cell_config("lr=0.5"), where="p")
    assert [cell.methods.local_at(r).lr for r in (1, 2, 3, 4)] == [0.5, 0.5, 0.25, 0.125]
    assert plain.methods.local_at(9) is plain.methods.local


def test_straggler_partial_work_counts_in_steps(cell_config, make_cell) -> None:
    # Prepare: every client straggles and runs x ~ U{1..tau} steps
    cell = make_cell(
        cell_config("local_epochs=null", "local_steps=40", "faults=stragglers", "faults.fraction=1.0"),
        where="st",
    )
    # Execute
    work = [planned_work(cell, r, c) for r in (1, 2, 3) for c in range(4)]
    # Assert: step counts in [1, 40], not all the same
    assert all(1 <= w <= 40 for w in work) and len(set(work)) > 1
    assert torch.tensor(work).sum() < 40 * len(work)
