"""Real cell configs composed from conf/ with Hydra's compose API, for any test module
(`from composing import compose_config`: a name no conftest.py shadows)."""

from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parent.parent / "conf"


def compose_config(overrides: list[str]) -> dict[str, Any]:
    """The resolved config dict a cell gets, composed from conf/ with these overrides."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)
