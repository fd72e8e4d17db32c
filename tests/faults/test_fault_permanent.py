"""Permanent faults: every attempt of every round fails, never retried; a seeded fraction."""

import pytest

from fedsweep.failures import PermanentFailure, retryable
from fedsweep.faults.base import ClientCtx
from fedsweep.faults.permanent import Permanent


def test_listed_clients_fail_every_attempt_of_every_round() -> None:
    # Prepare
    fault = Permanent(clients=[1, 3])
    # Execute / Assert
    for rnd in range(1, 6):
        for attempt in (1, 2, 3):
            for client in range(5):
                ctx = ClientCtx(seed=0, round=rnd, client=client, local_epochs=2, attempt=attempt)
                if client in (1, 3):
                    with pytest.raises(PermanentFailure) as info:
                        fault.before_epoch(ctx)
                    assert not retryable(info.value)
                else:
                    fault.before_epoch(ctx)


def test_fraction_is_per_seed_and_close_to_configured() -> None:
    # Prepare
    fault = Permanent(fraction=0.3)
    # Execute
    failed = [c for c in range(2000) if fault.is_failed(seed=0, client=c)]
    again = [c for c in range(2000) if fault.is_failed(seed=0, client=c)]
    other = [c for c in range(2000) if fault.is_failed(seed=1, client=c)]
    # Assert
    assert failed == again and failed != other
    assert len(failed) / 2000 == pytest.approx(0.3, abs=0.04)


def test_defaults_fail_nobody() -> None:
    # Execute / Assert
    assert not any(Permanent().is_failed(seed=0, client=c) for c in range(100))
