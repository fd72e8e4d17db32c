"""Every conf/strategy/*.yaml instantiates into a Strategy."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fedsweep.strategies.base import Strategy

CONF = Path(__file__).resolve().parents[2] / "conf" / "strategy"


def test_expected_strategy_options_exist() -> None:
    # Assert
    assert {p.stem for p in CONF.glob("*.yaml")} >= {"fedavg", "fedprox", "scaffold", "fednova", "feddyn"}


ROOT_KNOBS = OmegaConf.load(CONF.parent / "config.yaml")


def load_option(path: Path):  # a DictConfig
    """The option as the composed config sees it: interpolations (`${lr}`) resolve against the root."""
    root = OmegaConf.merge(
        {k: v for k, v in ROOT_KNOBS.items() if k not in ("defaults", "hydra")},
        {"strategy": OmegaConf.load(path)},
    )
    return root.strategy


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_strategy_yaml_instantiates(path: Path) -> None:
    # Execute
    strategy = instantiate(load_option(path))
    # Assert
    assert isinstance(strategy, Strategy)


def test_fedprox_yaml_sets_mu() -> None:
    # Execute
    strategy = instantiate(OmegaConf.load(CONF / "fedprox.yaml"), mu=0.5)
    # Assert
    assert strategy.mu == 0.5
