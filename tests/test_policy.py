"""Aggregation policy maths on hand cases: min_fit, skip/fail, FedAvg-drop vs FedProx-partial."""

import pytest

from fedsweep.rounds.policy import (
    AggregationPolicy,
    CellFailed,
    accept_straggler,
    aggregation_policy,
    decide,
    required_clients,
)


@pytest.mark.parametrize(
    ("min_fit", "selected", "expected"),
    [
        (1, 10, 1),
        (3, 10, 3),
        (3, 2, 3),
        (2, 0, 2),
        (0.5, 10, 5),
        (0.25, 10, 3),
        (0.3, 10, 3),
        (0.7, 10, 7),
        (1.0, 4, 4),
        (0.1, 3, 1),
        (0.1, 0, 1),
    ],
)
def test_required_clients(min_fit: float, selected: int, expected: int) -> None:
    # Execute / Assert: counts as given, fractions rounded up, never below one
    assert required_clients(min_fit, selected) == expected


@pytest.mark.parametrize("min_fit", [0, -1, 0.0, 1.5, True, "2"])
def test_required_clients_rejects_impossible(min_fit: object) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="min_fit"):
        required_clients(min_fit, 10)


@pytest.mark.parametrize(
    ("ok", "selected", "min_fit", "on_insufficient", "expected"),
    [
        (5, 10, 5, "skip", "aggregate"),
        (4, 10, 5, "skip", "skip"),
        (4, 10, 5, "fail", "fail"),
        (4, 10, 0.4, "fail", "aggregate"),
        (3, 10, 0.4, "fail", "fail"),
        (0, 0, 1, "skip", "skip"),
        (0, 0, 1.0, "fail", "fail"),
        (3, 3, 1.0, "fail", "aggregate"),
    ],
)
def test_decide(ok: int, selected: int, min_fit: float, on_insufficient: str, expected: str) -> None:
    # Execute / Assert
    assert decide(ok, selected, min_fit=min_fit, on_insufficient=on_insufficient) == expected


def test_decide_rejects_unknown_action() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="on_insufficient"):
        decide(1, 1, min_fit=1, on_insufficient="retry")


@pytest.mark.parametrize(
    ("done", "planned", "policy", "expected"),
    [
        (20, 20, "drop", True),
        (19, 20, "drop", False),
        (1, 20, "drop", False),
        (20, 20, "partial", True),
        (1, 20, "partial", True),
        (0, 20, "partial", False),
        (0, 20, "drop", False),
    ],
)
def test_accept_straggler(done: int, planned: int, policy: str, expected: bool) -> None:
    # Execute / Assert
    assert accept_straggler(done, planned, policy) is expected


def test_policy_object_and_failure_message() -> None:
    # Prepare
    policy = AggregationPolicy(min_fit=0.5, on_insufficient="fail", stragglers="drop")
    # Execute
    error = policy.failure(round=3, ok=2, selected=10)
    # Assert
    assert policy.required(10) == 5 and policy.decide(2, 10) == "fail" and not policy.accept(3, 4)
    assert isinstance(error, CellFailed) and "round 3" in str(error) and "needs 5" in str(error)


def test_config_block_defaults_and_values() -> None:
    # Execute / Assert
    assert aggregation_policy(None, clients_per_round=5) == AggregationPolicy()
    assert aggregation_policy(
        {"min_fit": 0.8, "on_insufficient": "fail", "stragglers": "drop"}, clients_per_round=5
    ) == AggregationPolicy(min_fit=0.8, on_insufficient="fail", stragglers="drop")
    assert aggregation_policy({"round_timeout_s": 2.5}, clients_per_round=5).round_timeout_s == 2.5
    assert aggregation_policy({"round_timeout_s": None}, clients_per_round=5) == AggregationPolicy()


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"min_fit": 6}, "aggregation.min_fit must be <= clients_per_round (5), got 6"),
        ({"min_fit": 0}, "aggregation.min_fit must be >= 1"),
        ({"min_fit": 1.5}, "aggregation.min_fit must be a count (int >= 1) or a fraction in (0, 1]"),
        ({"min_fit": "half"}, "aggregation.min_fit must be a count"),
        ({"on_insufficient": "retry"}, "aggregation.on_insufficient must be 'skip' or 'fail'"),
        ({"stragglers": "keep"}, "aggregation.stragglers must be 'drop', 'partial' or 'strategy'"),
        ({"min_fits": 2}, "aggregation.min_fits: unknown key"),
        (
            {"round_timeout_s": 0},
            "aggregation.round_timeout_s must be null or a number of seconds > 0, got 0",
        ),
        ({"round_timeout_s": -5.0}, "aggregation.round_timeout_s must be null or a number of seconds > 0"),
        ({"round_timeout_s": "5s"}, "aggregation.round_timeout_s must be null or a number of seconds > 0"),
        ({"round_timeout_s": True}, "aggregation.round_timeout_s must be null or a number of seconds > 0"),
        (
            {"round_timeout_s": float("inf")},
            "aggregation.round_timeout_s must be null or a number of seconds > 0",
        ),
    ],
)
def test_config_block_errors_name_the_key(cfg: dict, message: str) -> None:
    # Execute / Assert
    with pytest.raises(ValueError) as info:
        aggregation_policy(cfg, clients_per_round=5)
    assert message in str(info.value)


def test_policy_constructor_rejects_impossible_values() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="aggregation.min_fit must be a count"):
        AggregationPolicy(min_fit=0.0)
    with pytest.raises(ValueError, match="aggregation.stragglers must be"):
        AggregationPolicy(stragglers="keep")


def test_config_block_errors_use_the_given_key() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match=r"^agg\.min_fit must be <= clients_per_round \(2\), got 3$"):
        aggregation_policy({"min_fit": 3}, clients_per_round=2, key="agg")


def test_stragglers_strategy_follows_each_methods_paper() -> None:
    # Prepare
    from fedsweep.strategies.fedavg import FedAvg
    from fedsweep.strategies.fednova import FedNova
    from fedsweep.strategies.fedprox import FedProx

    policy = aggregation_policy({"stragglers": "strategy"}, clients_per_round=10)
    # Execute
    resolved = {
        type(s).__name__: policy.for_strategy(s.partial_work) for s in (FedAvg(), FedProx(), FedNova())
    }
    # Assert: FedAvg drops a client that ran 2 of 5 epochs, FedProx and FedNova aggregate its work
    assert {name: p.stragglers for name, p in resolved.items()} == {
        "FedAvg": "drop",
        "FedProx": "partial",
        "FedNova": "partial",
    }
    assert not resolved["FedAvg"].accept(2, 5) and resolved["FedProx"].accept(2, 5)
    fixed = aggregation_policy({"stragglers": "drop"}, clients_per_round=10)
    assert fixed.for_strategy(True) is fixed  # an explicit policy is the cell's, whatever its method
    with pytest.raises(ValueError, match="'drop', 'partial' or 'strategy', got 'some'"):
        aggregation_policy({"stragglers": "some"}, clients_per_round=10)
