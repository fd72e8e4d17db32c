"""Every conf/selection/*.yaml instantiates into a Selector."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fedsweep.selection.base import Selector

CONF = Path(__file__).resolve().parents[2] / "conf" / "selection"


def test_expected_selection_options_exist() -> None:
    # Assert
    assert "uniform" in {p.stem for p in CONF.glob("*.yaml")}


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_selection_yaml_instantiates(path: Path) -> None:
    # Execute
    selector = instantiate(OmegaConf.load(path))
    # Assert
    assert isinstance(selector, Selector)
