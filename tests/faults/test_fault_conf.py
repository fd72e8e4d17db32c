"""Every conf/faults/*.yaml instantiates (Hydra and validate_faults agree); the presets compose."""

from pathlib import Path
from typing import Any

import pytest
from composing import compose_config
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fedsweep.faults.base import Fault, FaultPlan, as_plan, validate_faults
from fedsweep.faults.schedule import Schedule
from fedsweep.faults.transient import Transient
from fedsweep.grid import expand_grid
from fedsweep.rounds.policy import aggregation_policy

CONF = Path(__file__).resolve().parents[2] / "conf"


def preset(*overrides: str) -> dict[str, Any]:
    """A preset's resolved config, with its own sizes (the shared fixture would shrink them)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return OmegaConf.to_container(compose(config_name="config", overrides=list(overrides)), resolve=True)


KINDS = {
    "none",
    "transient",
    "permanent",
    "hang",
    "oom",
    "stragglers",
    "corrupt",
    "malicious",
    "schedule",
    "mixed",
}


def test_expected_fault_options_exist() -> None:
    # Assert
    assert {p.stem for p in (CONF / "faults").glob("*.yaml")} >= KINDS


@pytest.mark.parametrize("path", sorted((CONF / "faults").glob("*.yaml")), ids=lambda p: p.stem)
def test_fault_yaml_instantiates(path: Path) -> None:
    # Prepare
    cfg = OmegaConf.load(path)
    if "defaults" in cfg:  # an option built on another: as Hydra composes it
        cfg = OmegaConf.create(compose_config([f"faults={path.stem}"])["faults"])
    # Execute
    by_hydra = instantiate(cfg)
    by_validation = validate_faults(OmegaConf.to_container(cfg), num_clients=10)
    # Assert
    assert isinstance(by_hydra, Fault)
    assert as_plan(by_hydra) == by_validation


def test_none_is_the_empty_plan() -> None:
    # Execute / Assert
    assert instantiate(OmegaConf.load(CONF / "faults" / "none.yaml")) == FaultPlan()


def test_failures_preset_is_p2pfl_scenario() -> None:
    # Execute
    cfg = preset("+experiment=failures")
    plan = validate_faults(cfg["faults"], num_clients=cfg["num_clients"])
    # Assert
    assert (cfg["num_clients"], cfg["clients_per_round"], cfg["rounds"]) == (4, 4, 5)
    assert plan == FaultPlan(faults=(Transient(p=0.2), Schedule(clients=[0], fail_at=3, recover_at=4)))
    assert [plan.available_clients(seed=0, round=r, num_clients=4) for r in (2, 3, 4)] == [
        [0, 1, 2, 3],
        [1, 2, 3],
        [0, 1, 2, 3],
    ]


def test_stragglers_preset_grid() -> None:
    # Prepare
    base = preset("+experiment=stragglers")
    # Execute
    plans = expand_grid(base["grid"], [])
    cfg = preset("+experiment=stragglers", "faults.fraction=0.9")
    # Assert
    assert (base["num_clients"], base["clients_per_round"], base["local_epochs"]) == (30, 10, 20)
    assert len(plans) == 9
    assert validate_faults(cfg["faults"], num_clients=30).faults[0].fraction == 0.9
    for label, moves in base["grid"]["method"].items():
        policy = aggregation_policy({"stragglers": moves["aggregation.stragglers"]}, clients_per_round=10)
        assert policy.stragglers == ("drop" if label == "fedavg_drop" else "partial")
