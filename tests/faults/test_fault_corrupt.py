"""Corrupted updates: NaN/Inf in every floating-point tensor, integer buffers and inputs untouched."""

import pytest
import torch

from fedsweep.faults.base import ClientRound
from fedsweep.faults.corrupt import Corrupt, corrupt

CR = ClientRound(seed=0, round=1, client=0, local_epochs=1)


def params() -> dict[str, torch.Tensor]:
    return {"w": torch.ones(2, 3), "b": torch.zeros(3), "steps": torch.tensor(7)}


@pytest.mark.parametrize(
    ("value", "check"), [("nan", torch.isnan), ("inf", torch.isposinf), ("-inf", torch.isneginf)]
)
def test_corrupts_floating_tensors(value: str, check: object) -> None:
    # Prepare
    clean = params()
    # Execute
    out = Corrupt(p=1.0, value=value).after_training(CR, clean, clean)
    # Assert
    assert check(out["w"]).all() and check(out["b"]).all()
    assert out["steps"].item() == 7
    assert torch.equal(clean["w"], torch.ones(2, 3))


def test_corrupt_function_keeps_shapes_and_dtypes() -> None:
    # Execute
    out = corrupt({"h": torch.ones(4, dtype=torch.float16)}, float("nan"))
    # Assert
    assert out["h"].dtype == torch.float16 and out["h"].shape == (4,) and torch.isnan(out["h"]).all()


def test_seeded_per_round_and_client() -> None:
    # Prepare
    fault, clean = Corrupt(p=0.3), params()
    crs = [ClientRound(seed=0, round=r, client=c, local_epochs=1) for r in range(1, 21) for c in range(50)]
    # Execute
    hit = [fault.after_training(cr, clean, clean) is not clean for cr in crs]
    # Assert
    assert hit == [fault.after_training(cr, clean, clean) is not clean for cr in crs]
    assert sum(hit) / len(hit) == pytest.approx(0.3, abs=0.04)


def test_rejects_unknown_value() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="value must be one of"):
        Corrupt(value="zero")
