"""Transient faults: seeded per attempt, fail with probability p, retries get past them."""

import pytest

from fedsweep.failures import TransientFailure, retryable
from fedsweep.faults.base import ClientCtx
from fedsweep.faults.transient import Transient


def fails(fault: Transient, ctx: ClientCtx) -> bool:
    try:
        fault.before_epoch(ctx)
    except TransientFailure as exc:
        assert retryable(exc)
        return True
    return False


def ctx(seed: int, round: int, client: int, attempt: int, epoch: int = 0) -> ClientCtx:
    return ClientCtx(seed=seed, round=round, client=client, local_epochs=1, epoch=epoch, attempt=attempt)


def test_same_coordinates_same_decision_other_seed_differs() -> None:
    # Prepare
    fault = Transient(p=0.5)
    coords = [(r, c, a) for r in range(1, 6) for c in range(10) for a in (1, 2)]
    # Execute
    first = [fails(fault, ctx(0, *x)) for x in coords]
    again = [fails(fault, ctx(0, *x)) for x in coords]
    other_seed = [fails(fault, ctx(1, *x)) for x in coords]
    # Assert
    assert first == again and first != other_seed


def test_failure_rate_per_attempt_and_retries_succeed() -> None:
    # Prepare: 3000 client-rounds, four attempts each (one try plus three retries)
    p, n = 0.2, 3000
    fault = Transient(p=p)
    # Execute
    outcomes = [
        [fails(fault, ctx(0, r, c, a)) for a in (1, 2, 3, 4)] for r in range(1, 31) for c in range(n // 30)
    ]
    first = sum(o[0] for o in outcomes) / n
    second_given_first = sum(o[1] for o in outcomes if o[0]) / max(1, sum(o[0] for o in outcomes))
    recovered = sum(o[0] and not all(o) for o in outcomes) / max(1, sum(o[0] for o in outcomes))
    # Assert: independent draws per attempt, so a retry fails again with probability p only
    assert first == pytest.approx(p, abs=0.03)
    assert second_given_first == pytest.approx(p, abs=0.06)
    assert recovered == pytest.approx(1 - p**3, abs=0.02)
    assert any(o[0] and not o[1] for o in outcomes)  # fails on attempt 1, succeeds on attempt 2


def test_epochs_draw_independently() -> None:
    # Prepare
    fault = Transient(p=0.5)
    # Execute
    by_epoch = [[fails(fault, ctx(0, 1, c, 1, epoch=e)) for c in range(40)] for e in (0, 1)]
    # Assert
    assert by_epoch[0] != by_epoch[1]


def test_restricted_to_clients_and_extremes() -> None:
    # Prepare
    only_two = Transient(p=1.0, clients=[2])
    # Execute / Assert
    assert fails(only_two, ctx(0, 1, 2, 1)) and not fails(only_two, ctx(0, 1, 3, 1))
    assert not any(fails(Transient(p=0.0), ctx(0, 1, c, 1)) for c in range(50))


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.3", True])
def test_rejects_bad_p(p: object) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="p must be in"):
        Transient(p=p)
