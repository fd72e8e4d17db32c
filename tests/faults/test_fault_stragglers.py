"""Stragglers (FedProx): a seeded fraction per round runs x ~ U{1..E} epochs, and may be slower."""

import time

import pytest

from fedsweep.faults.base import ClientRound
from fedsweep.faults.stragglers import Stragglers

E = 20


def rounds(seed: int = 0) -> list[ClientRound]:
    return [
        ClientRound(seed=seed, round=r, client=c, local_epochs=E) for r in range(1, 41) for c in range(50)
    ]


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.9, 1.0])
def test_fraction_of_stragglers_close_to_configured(fraction: float) -> None:
    # Prepare
    fault = Stragglers(fraction=fraction)
    # Execute
    share = sum(fault.is_straggler(cr) for cr in rounds()) / len(rounds())
    # Assert
    assert share == pytest.approx(fraction, abs=0.03)


def test_epochs_uniform_in_one_to_e_for_stragglers_only() -> None:
    # Prepare
    fault = Stragglers(fraction=0.5)
    # Execute
    epochs = {cr: fault.epochs_to_run(cr) for cr in rounds()}
    straggling = [e for cr, e in epochs.items() if fault.is_straggler(cr)]
    # Assert
    assert all(e == E for cr, e in epochs.items() if not fault.is_straggler(cr))
    assert set(straggling) == set(range(1, E + 1))
    assert sum(straggling) / len(straggling) == pytest.approx((E + 1) / 2, abs=0.5)


def test_replays_per_seed_and_round() -> None:
    # Prepare
    fault = Stragglers(fraction=0.5)
    # Execute
    first = [fault.epochs_to_run(cr) for cr in rounds(0)]
    # Assert
    assert first == [fault.epochs_to_run(cr) for cr in rounds(0)]
    assert first != [fault.epochs_to_run(cr) for cr in rounds(1)]


def test_slow_only_stragglers_run_every_epoch_and_sleep() -> None:
    # Prepare
    fault = Stragglers(fraction=1.0, partial=False, delay_s=0.06)
    cr = ClientRound(seed=0, round=1, client=0, local_epochs=E)
    # Execute
    start = time.monotonic()
    fault.before_epoch(cr.at(epoch=0))
    # Assert
    assert time.monotonic() - start >= 0.06 and fault.epochs_to_run(cr) == E


def test_from_systems_stragglers_run_what_their_device_finishes_by_the_deadline() -> None:
    # Prepare: E = 20; the system model says a client can do 7 epochs, 20 or more, none, or has no deadline
    fault = Stragglers(fraction=0.0, from_systems=True)
    ctx = {n: ClientRound(seed=0, round=1, client=0, local_epochs=E, affordable=n) for n in (7, 25, 0, None)}
    # Execute / Assert: `fraction` plays no part; at least one epoch (the deadline then cuts it)
    assert [fault.is_straggler(c) for c in ctx.values()] == [True, False, True, False]
    assert [fault.epochs_to_run(c) for c in ctx.values()] == [7, E, 1, E]
    assert fault.epochs_to_run(ctx[7].at(epoch=3)) == 7
