"""From a Hydra config to a sweep plan: one fully resolved config per cell, validated, nothing written.

Everything here runs before Prefect or MLflow is imported and before any file is created, so a
mistyped command costs a one-line error and nothing else.
"""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from fedsweep.sweep import cell_key, cell_name, expand_grid, flatten


@dataclass(frozen=True)
class SweepPlan:
    """What `flows/sweep.py` runs: the cells and where their results go."""

    name: str
    key: str
    dir: Path
    cells: list[dict[str, Any]]
    tracking: dict[str, Any]
    resume: bool
    params: dict[str, Any] = field(default_factory=dict)


def plan_sweep(cfg: DictConfig) -> SweepPlan:
    """Compose every cell of the grid with the command line's overrides (which win over the grid)."""
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    grid = OmegaConf.to_container(cfg.grid, resolve=True) or {}
    sweep_name = str(cfg.sweep_name)
    sweep_dir = Path(str(cfg.output_dir)) / sweep_name
    cells = []
    for point in expand_grid(grid, overrides):
        composed = compose(
            config_name=hydra_cfg.job.config_name, overrides=[*overrides, *point.overrides],
            return_hydra_config=True,
        )
        choices = dict(composed.hydra.runtime.choices)
        with open_dict(composed):
            del composed["hydra"]
        config = OmegaConf.to_container(composed, resolve=True)
        name = cell_name(
            strategy=choices["strategy"], num_clients=config["num_clients"], rounds=config["rounds"],
            seed=config["seed"], labels=point.labels,
        )
        key = cell_key(config)
        location = config["checkpoint"]["location"] or str(sweep_dir / "cells")
        params = {**flatten(config), **{f"choice.{k}": v for k, v in choices.items() if not k.startswith("hydra")}}
        cells.append(
            {"name": name, "key": key, "dir": f"{location.rstrip('/')}/{name}-{key[:8]}",
             "config": config, "params": params}
        )
    keys = "".join(sorted(c["key"] for c in cells))
    sweep_key = hashlib.sha256(f"{sweep_name}:{keys}".encode()).hexdigest()[:16]
    tracking = OmegaConf.to_container(cfg.tracking, resolve=True)
    return SweepPlan(
        name=sweep_name, key=sweep_key, dir=sweep_dir, cells=cells, tracking=tracking,
        resume=bool(cfg.resume), params={"grid": str(grid), "overrides": " ".join(overrides)},
    )
