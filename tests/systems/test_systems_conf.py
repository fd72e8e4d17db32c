"""The systems group: every option instantiates, `none` keeps cell keys, bad settings are one line."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cli.main import check_command
from fedsweep.config import ConfigError
from fedsweep.grid import cell_key
from fedsweep.systems.base import SystemModel

CONF = Path(__file__).resolve().parents[2] / "conf" / "systems"


@pytest.mark.parametrize(
    "path", sorted(p for p in CONF.glob("*.yaml") if p.stem != "none"), ids=lambda p: p.stem
)
def test_systems_yaml_instantiates(path: Path) -> None:
    assert isinstance(instantiate(OmegaConf.load(path)), SystemModel)


def test_none_is_empty_and_leaves_the_cell_key_as_it_was(cell_config) -> None:
    # Prepare
    config = cell_config("+experiment=quickstart")
    before = {k: v for k, v in config.items() if k not in ("systems", "report")}
    # Assert: the key of a config without the keys that came later
    assert config["systems"] == {}
    assert cell_key(config) == cell_key(before)
    assert cell_key(cell_config("+experiment=quickstart", "systems=fleet")) != cell_key(config)


REFUSED = [
    (["systems=fleet", "systems.speed.sigma=-1"], ["systems.speed.sigma must be a number >= 0, got -1"]),
    (
        [
            "systems=fleet",
            "systems.up_bps._target_=fedsweep.systems.distributions.Uniform",
            "+systems.up_bps.low=5",
            "+systems.up_bps.high=1",
            "~systems.up_bps.median",
            "~systems.up_bps.sigma",
        ],
        ["systems.up_bps.high must be >= low (5), got 1"],
    ),
    (
        [
            "systems=fleet",
            "systems.speed._target_=fedsweep.systems.distributions.Pareto",
            "~systems.speed.median",
            "~systems.speed.sigma",
            "+systems.speed.scale=1",
            "+systems.speed.shape=0",
        ],
        ["systems.speed.shape must be a number > 0, got 0"],
    ),
    (["systems=fleet", "systems.deadline_s=0"], ["systems.deadline_s must be a number > 0, got 0"]),
    (["systems=fleet", "systems.over_select=-0.5"], ["systems.over_select must be a number >= 0"]),
    (
        [
            "systems=fleet",
            "systems.availability._target_=fedsweep.systems.availability.OnOff",
            "+systems.availability.on_rounds=0",
            "+systems.availability.off_rounds=1",
        ],
        ["systems.availability.on_rounds must be an integer >= 1, got 0"],
    ),
    (
        ["systems=fleet", "systems.deadline_s=0.001"],
        [
            "systems.deadline_s=0.001 is shorter than every client's simulated round",
            "no client could ever be trained",
        ],
    ),
    (
        ["systems=fleet", "faults=stragglers", "+faults.from_systems=true"],
        ["faults.from_systems needs a simulated deadline"],
    ),
    (["report.target_fraction=2"], ["report.target_fraction must be an accuracy in (0, 1], got 2"]),
]


@pytest.mark.parametrize(("argv", "expected"), REFUSED, ids=[" ".join(a)[:60] for a, _ in REFUSED])
def test_bad_systems_settings_are_one_line_naming_the_key(tmp_path, monkeypatch, argv, expected) -> None:
    # Prepare
    monkeypatch.chdir(tmp_path)
    # Execute
    with pytest.raises(ConfigError) as err:
        check_command(argv)
    # Assert
    assert "\n" not in str(err.value)
    for text in expected:
        assert text in str(err.value)
    assert list(tmp_path.iterdir()) == []
