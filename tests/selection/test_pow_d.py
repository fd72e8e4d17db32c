"""Power-of-choice: candidates ∝ data size without replacement, the k largest probed losses, 1/m
weights; d refused at validation when impossible."""

import pytest
import torch
from hydra import initialize_config_dir
from selection_cases import CONF, play, population

from fedsweep.config import ConfigError, validate
from fedsweep.config.compose import compose_config
from fedsweep.selection.pow_d import PowD


def test_picks_the_largest_losses_among_its_candidates() -> None:
    # Prepare: losses known for everyone; the selector sees only its candidates'
    pop = population(10, 10, 10, 10, 10, 10, 10, 10)
    losses = {c: [0.5, 2.0, 0.1, 3.0, 1.5, 0.7, 2.5, 0.2][c] for c in range(8)}
    # Execute
    candidates, chosen = play(PowD(d=5), pop, 2, losses=losses)
    # Assert: the two largest among the five candidates, equal weights
    expected = sorted(sorted(candidates, key=lambda c: -losses[c])[:2])
    assert len(candidates) == 5 == len(set(candidates))
    assert chosen.clients == expected
    assert chosen.weights == dict.fromkeys(expected, 1.0)


def test_hand_computed_choice_and_ties() -> None:
    # Prepare: d = everyone, so the candidates are known: 0..3
    pop = population(1, 1, 1, 1)
    # Execute
    candidates, chosen = play(PowD(d=4), pop, 2, losses={0: 1.0, 1: 3.0, 2: float("nan"), 3: 1.0})
    # Assert: 1 (3.0) then the smaller id of the tie at 1.0; NaN ranks last
    assert candidates == [0, 1, 2, 3]
    assert chosen.clients == [0, 1]


def test_candidates_are_drawn_by_data_size_without_replacement() -> None:
    # Prepare: client 3 holds no sample; client 0 most
    pop = population(70, 10, 20, 0)
    counts = torch.zeros(4)
    # Execute
    for r in range(1, 1001):
        candidates, _ = play(PowD(d=2), pop, 1, round=r, losses={0: 0.0, 1: 0.0, 2: 0.0})
        counts[candidates] += 1
    # Assert: client 0 in almost every set; successive sampling: P(1 in) = .1 + .7·.1/.3 + .2·.1/.8 ≈ .358
    assert counts[3] == 0 and counts.sum() == 2000
    assert counts[0] > 900 and abs(counts[1] - 358) < 60


def test_default_d_is_twice_k_and_fewer_available_are_all_probed() -> None:
    # Execute
    candidates, _ = play(PowD(), population(*[1] * 20), 3, losses=dict.fromkeys(range(20), 0.0))
    few, chosen = play(
        PowD(d=6), population(*[1] * 20), 3, available=torch.tensor([4, 9]), losses={4: 1.0, 9: 2.0}
    )
    # Assert
    assert len(candidates) == 6
    assert few == [4, 9] and chosen.clients == [4, 9]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["selection=pow_d", "selection.d=2", "clients_per_round=3"],
            "selection.d must be >= clients_per_round (3)",
        ),
        (
            ["selection=cpow_d", "selection.d=11", "num_clients=10"],
            "selection.d must be <= num_clients (10), got d=11",
        ),
        (
            ["selection=rpow_d", "selection.d=4", "clients_per_round=5"],
            "selection.d must be >= clients_per_round (5)",
        ),
        (["selection=cpow_d", "selection.b=0"], "selection: b must be >= 1, got 0"),
        (["selection=pow_d", "selection.d=6", "clients_per_round=3", "num_clients=10"], None),
    ],
)
def test_impossible_d_is_refused_at_validation(overrides: list[str], expected: str | None) -> None:
    # Prepare
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        config, choices = compose_config("config", overrides)
    # Execute / Assert
    if expected is None:
        validate(config, groups=choices)
        return
    with pytest.raises(ConfigError) as err:
        validate(config, groups=choices)
    assert expected in str(err.value)
