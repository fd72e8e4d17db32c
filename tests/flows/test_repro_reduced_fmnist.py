"""The reduced reproductions on Fashion-MNIST (tests/flows/test_repro_reduced.py says what each checks)."""

from pathlib import Path

import pytest
from test_repro_reduced import FMNIST, reduced_claims_hold


@pytest.mark.slow
@pytest.mark.parametrize("name", FMNIST)
def test_the_reduced_claims_hold_on_fashion_mnist(tmp_path: Path, prefect_home: Path, name: str) -> None:
    reduced_claims_hold(tmp_path, prefect_home, name)
