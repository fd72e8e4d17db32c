"""Scheduled outages (p2pfl): down in rounds [fail_at, recover_at), as unavailability or a failure."""

import pytest

from fedsweep.failures import NodeDown, retryable
from fedsweep.faults.base import ClientCtx
from fedsweep.faults.schedule import Schedule


def test_availability_window_is_exact() -> None:
    # Prepare
    fault = Schedule(clients=[0], fail_at=3, recover_at=5)
    # Execute
    available = {r: fault.available(seed=0, round=r, client=0) for r in range(1, 8)}
    # Assert
    assert available == {1: True, 2: True, 3: False, 4: False, 5: True, 6: True, 7: True}
    assert all(fault.available(seed=0, round=r, client=1) for r in range(1, 8))


def test_fail_mode_keeps_client_selectable_and_fails_it() -> None:
    # Prepare
    fault = Schedule(clients=[0], fail_at=3, recover_at=4, mode="fail")
    # Execute / Assert
    assert fault.available(seed=0, round=3, client=0)
    with pytest.raises(NodeDown) as info:
        fault.before_epoch(ClientCtx(seed=0, round=3, client=0, local_epochs=1, attempt=2))
    assert not retryable(info.value)
    fault.before_epoch(ClientCtx(seed=0, round=4, client=0, local_epochs=1))


def test_selected_while_down_fails_in_either_mode() -> None:
    # Execute / Assert
    with pytest.raises(NodeDown):
        Schedule(clients=[0], fail_at=1).before_epoch(ClientCtx(seed=0, round=99, client=0, local_epochs=1))


def test_without_recovery_down_for_good() -> None:
    # Prepare
    fault = Schedule(clients=[1, 2], fail_at=2)
    # Execute / Assert
    assert fault.available(seed=0, round=1, client=1)
    assert not any(fault.available(seed=0, round=r, client=c) for r in range(2, 50) for c in (1, 2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fail_at": 0}, "fail_at must be a round >= 1"),
        ({"fail_at": 3, "recover_at": 2}, "recover_at must be"),
        ({"fail_at": 3, "mode": "crash"}, "mode must be"),
    ],
)
def test_rejects_bad_windows(kwargs: dict, message: str) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match=message):
        Schedule(clients=[0], **kwargs)


def test_online_is_one_mask_over_the_fleet_matching_available() -> None:
    # Prepare: clients 1 and 3 down in rounds [2, 4); client 7 does not exist in a fleet of 5
    fault = Schedule(clients=[1, 3, 7], fail_at=2, recover_at=4)
    # Execute
    masks = {r: fault.online(seed=0, round=r, num_clients=5).tolist() for r in (1, 2, 3, 4)}
    # Assert: by hand, and each entry is what `available` says of that client
    down = [True, False, True, False, True]
    assert masks == {1: [True] * 5, 2: down, 3: down, 4: [True] * 5}
    assert all(fault.available(seed=0, round=r, client=c) == masks[r][c] for r in masks for c in range(5))
