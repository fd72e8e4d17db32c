"""Malicious updates: w_g + s·(w − w_g), exact on hand cases; attackers fixed per seed."""

import pytest
import torch

from fedsweep.faults.base import ClientRound
from fedsweep.faults.malicious import Malicious, scale_update

G = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(5)}
W = {"w": torch.tensor([3.0, 0.0]), "n": torch.tensor(9)}


@pytest.mark.parametrize(
    ("scale", "expected"), [(-1.0, [-1.0, 4.0]), (3.0, [7.0, -4.0]), (1.0, [3.0, 0.0]), (0.0, [1.0, 2.0])]
)
def test_scaling_maths_on_a_hand_case(scale: float, expected: list[float]) -> None:
    # Execute: g = [1, 2], w − g = [2, −2]
    out = scale_update(W, G, scale)
    # Assert
    assert out["w"].tolist() == expected and out["w"].dtype == torch.float32
    assert out["n"].item() == 9


def test_only_attackers_are_scaled() -> None:
    # Prepare
    fault = Malicious(scale=-1.0, clients=[2])
    attacker, honest = (ClientRound(seed=0, round=1, client=c, local_epochs=1) for c in (2, 3))
    # Execute
    out_attacker, out_honest = fault.after_training(attacker, W, G), fault.after_training(honest, W, G)
    # Assert
    assert out_attacker["w"].tolist() == [-1.0, 4.0]
    assert out_honest is W and W["w"].tolist() == [3.0, 0.0]


def test_attackers_drawn_per_seed_are_the_same_every_round() -> None:
    # Prepare
    fault = Malicious(fraction=0.2)
    # Execute
    seed0 = [c for c in range(1000) if fault.is_malicious(seed=0, client=c)]
    # Assert
    assert seed0 == [c for c in range(1000) if fault.is_malicious(seed=0, client=c)]
    assert seed0 != [c for c in range(1000) if fault.is_malicious(seed=1, client=c)]
    assert len(seed0) / 1000 == pytest.approx(0.2, abs=0.04)
