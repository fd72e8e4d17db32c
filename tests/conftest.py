"""Shared fixtures: composing real cell configs from conf/ with Hydra's compose API."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parent.parent / "conf"


def compose_config(overrides: list[str]) -> dict[str, Any]:
    """The resolved config dict a cell gets, composed from conf/ with these overrides."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.fixture(scope="session")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Prefect database for the session's sweeps, outside the user's ~/.prefect (their shared
    Prefect server lives beside it: tests/flows/sweep_cli.py)."""
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture
def cell_config() -> Callable[..., dict[str, Any]]:
    """`cell_config("rounds=2", ...)` -> a resolved cell config (tiny synthetic defaults)."""

    def make(*overrides: str) -> dict[str, Any]:
        return compose_config(["num_clients=4", "clients_per_round=2", "batch_size=16", *overrides])

    return make


@pytest.fixture
def make_cell(tmp_path) -> Callable[..., Any]:
    """`make_cell(config)` -> the `Cell` of a cell folder written for `config` under tmp_path."""
    from fedsweep.cell.cell import open_cell
    from fedsweep.cell.layout import write_cell_config
    from fedsweep.grid import cell_key

    def make(config: dict[str, Any], where: str = "cell") -> Any:
        cell_dir = str(tmp_path / where)
        write_cell_config(cell_dir, key=cell_key(config), name=where, config=config)
        return open_cell(cell_dir)

    return make
