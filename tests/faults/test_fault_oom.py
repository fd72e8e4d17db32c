"""Simulated OOM: a MemoryError on seeded attempts, retryable."""

import pytest

from fedsweep.failures import SimulatedOOM, failure_kind, retryable
from fedsweep.faults.base import ClientCtx
from fedsweep.faults.oom import OOM


def ooms(fault: OOM, ctx: ClientCtx) -> bool:
    try:
        fault.before_epoch(ctx)
    except SimulatedOOM:
        return True
    return False


def test_raises_a_retryable_memory_error() -> None:
    # Prepare
    ctx = ClientCtx(seed=0, round=1, client=2, local_epochs=1)
    # Execute
    with pytest.raises(MemoryError) as info:
        OOM(p=1.0, clients=[2]).before_epoch(ctx)
    # Assert
    assert (
        isinstance(info.value, SimulatedOOM) and retryable(info.value) and failure_kind(info.value) == "oom"
    )
    assert "round 1, client 2" in str(info.value)


def test_seeded_rate_close_to_p() -> None:
    # Prepare
    fault = OOM(p=0.1)
    coords = [
        ClientCtx(seed=3, round=r, client=c, local_epochs=1, attempt=a)
        for r in range(1, 21)
        for c in range(50)
        for a in (1, 2)
    ]
    # Execute
    hits = [ooms(fault, ctx) for ctx in coords]
    # Assert
    assert hits == [ooms(fault, ctx) for ctx in coords]
    assert sum(hits) / len(hits) == pytest.approx(0.1, abs=0.02)
    assert not ooms(OOM(p=1.0, clients=[0]), coords[2])  # client 1
