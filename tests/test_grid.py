"""Grid expansion, cell names and content keys (fedsweep/grid.py)."""

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from fedsweep.grid import GridError, cell_key, cell_name, expand_grid, flatten, legacy_key, override_key


def test_grid_is_the_cartesian_product_in_written_order() -> None:
    # Prepare
    grid = {"strategy": ["fedavg", "fedprox"], "num_clients": [10, 50]}
    # Execute
    plans = expand_grid(grid, ["+experiment=quickstart"])
    # Assert
    assert [p.overrides for p in plans] == [
        ("strategy=fedavg", "num_clients=10"),
        ("strategy=fedavg", "num_clients=50"),
        ("strategy=fedprox", "num_clients=10"),
        ("strategy=fedprox", "num_clients=50"),
    ]
    assert all(p.labels == () for p in plans)


def test_a_command_line_key_replaces_its_axis() -> None:
    plans = expand_grid({"strategy": ["fedavg", "fedprox"], "num_clients": [10, 50]}, ["strategy=fedavg"])
    assert [p.overrides for p in plans] == [("num_clients=10",), ("num_clients=50",)]


def test_labelled_axis_moves_keys_together_and_names_the_cell() -> None:
    # Prepare
    grid = {"method": {"prox1": {"strategy": "fedprox", "strategy.mu": 1.0}}, "lr": [0.1]}
    # Execute
    (plan,) = expand_grid(grid, [])
    # Assert
    assert plan.overrides == ("strategy=fedprox", "strategy.mu=1.0", "lr=0.1")
    assert plan.labels == ("prox1", "lr0.1")


def test_an_axis_of_config_group_options_names_cells_by_the_option() -> None:
    # Execute
    plans = expand_grid({"selection": ["uniform", "oort"], "partition.alpha": [0.5]}, [])
    # Assert: the option alone, beside a value labelled by its key
    assert [p.labels for p in plans] == [("uniform", "alpha0.5"), ("oort", "alpha0.5")]


def test_labelled_axis_is_dropped_when_the_command_line_sets_one_of_its_keys() -> None:
    grid = {"method": {"a": {"strategy": "fedavg"}, "b": {"strategy": "fedprox"}}}
    assert [p.overrides for p in expand_grid(grid, ["+strategy=fedavg"])] == [()]


def test_empty_grid_is_one_cell() -> None:
    assert [p.overrides for p in expand_grid({}, [])] == [()]


@pytest.mark.parametrize("bad", [{"rounds": []}, {"rounds": 3}, {"m": {"x": 1}}, {"m": {"x": {}}}])
def test_malformed_axes_are_refused_with_the_axis_named(bad: dict) -> None:
    with pytest.raises(GridError, match=next(iter(bad))):
        expand_grid(bad, [])


def test_values_are_formatted_as_hydra_overrides() -> None:
    (plan,) = expand_grid({"a": [None], "b": [True]}, [])
    assert plan.overrides == ("a=null", "b=true")


def test_override_key_strips_prefixes() -> None:
    assert [override_key(o) for o in ["+a.b=1", "~c", "d=2", "++e=3"]] == ["a.b", "c", "d", "e"]


def test_cell_name_follows_the_contract() -> None:
    name = cell_name(strategy="fedprox", num_clients=100, rounds=50, seed=0, labels=["mu1"])
    assert name == "fedprox-c100-r50-s0-mu1"


def test_cell_key_ignores_where_things_are_written_but_not_what_is_computed() -> None:
    # Prepare
    base = {"rounds": 3, "lr": 0.1, "tracking": {"uri": "a"}, "checkpoint": {"location": "x"}}
    moved = {**base, "tracking": {"uri": "b"}, "checkpoint": {"location": "y"}, "resume": False}
    changed = {**base, "lr": 0.2}
    # Execute / Assert
    assert cell_key(base) == cell_key(moved)
    assert cell_key(base) != cell_key(changed)


# The rule before the schema marked semantic keys: whole groups and knobs left out of the key.
OLD_NON_SEMANTIC = ("tracking", "checkpoint", "runner", "resume", "grid", "sweep_name", "output_dir")


def old_cell_key(config: dict[str, Any]) -> str:
    # local_steps and lr_schedule came later: a config at their defaults is what an old config was
    later = {"local_steps": None, "lr_schedule": {"milestones": [], "gamma": 0.1}}
    # so did systems (none: {}) and the report block, which never counts
    later.update(systems={}, report=config.get("report"), evaluate_every=1)  # evaluate_every never counts
    semantic = {k: v for k, v in config.items() if k not in OLD_NON_SEMANTIC and later.get(k, object()) != v}
    # aggregation.round_timeout_s came later too: an old aggregation block had no such key
    if semantic.get("aggregation", {}).get("round_timeout_s", 0) is None:
        semantic["aggregation"] = {k: v for k, v in semantic["aggregation"].items() if k != "round_timeout_s"}
    return hashlib.sha256(json.dumps(semantic, sort_keys=True, default=str).encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    ("override", "semantic"),
    [
        ("runner.amp=true", True),
        ("runner.device=cuda", True),
        ("runner.device=auto", True),
        ("lr=0.07", True),
        ("lr_schedule.milestones=[3]", True),
        ("strategy=fedprox", True),
        ("runner.progress=false", False),
        ("runner.retries=7", False),
        ("runner.retry_delay_s=2", False),
        ("runner.task_timeout_s=9", False),
        ("runner/engine=thread", False),
        ("runner.granularity=client", False),
        ("runner.max_parallel_clients=3", False),
        ("runner.torch_threads=2", True),  # the float rounding depends on it; 1, the default, keeps old keys
        ("aggregation.round_timeout_s=5", True),  # it can change which updates a round aggregates
        ("systems=fleet", True),  # a simulated clock can cut clients off
        ("report.target_fraction=0.5", False),  # how the summary reads results
        ("runner.memory.stop=0.99", False),
        ("checkpoint.location=/elsewhere", False),
        ("checkpoint.keep=5", False),
        ("tracking.uri=sqlite:///x.db", False),
        ("resume=false", False),
    ],
)
def test_the_schema_decides_which_settings_change_the_cell_key(
    cell_config: Callable[..., dict[str, Any]], override: str, semantic: bool
) -> None:
    # Prepare
    base = cell_config()
    # Execute
    changed = cell_config(override)
    # Assert
    assert (cell_key(changed) != cell_key(base)) is semantic


@pytest.mark.parametrize(
    "overrides", [(), ("+experiment=quickstart",), ("+experiment=failures",), ("+experiment=bench",)]
)
def test_amp_and_device_at_their_defaults_keep_every_existing_key(
    cell_config: Callable[..., dict[str, Any]], overrides: tuple[str, ...]
) -> None:
    # Prepare
    config = cell_config(*overrides)
    # Execute / Assert: the key every cell had, rounds in, is `legacy_key` (cli/identity.py finds them by it)
    assert (config["runner"]["amp"], config["runner"]["device"]) == (False, "cpu")
    assert legacy_key(config) == cell_key(config, with_rounds=True) == old_cell_key(config)
    assert legacy_key(cell_config(*overrides, "runner.amp=true")) != old_cell_key(config)


def test_rounds_are_where_a_cell_stops_not_part_of_its_key(
    cell_config: Callable[..., dict[str, Any]],
) -> None:
    # Prepare
    five, ten = cell_config("rounds=5"), cell_config("rounds=10")
    # Execute / Assert: one cell whatever its rounds; the old key, and a key with rounds in, tell them apart
    assert cell_key(five) == cell_key(ten)
    assert cell_key(five, with_rounds=True) != cell_key(ten, with_rounds=True)
    assert legacy_key(five) != legacy_key(ten) and cell_key(five) != legacy_key(five)
    assert cell_key(cell_config("rounds=5", "lr=0.07")) != cell_key(five)


def test_a_cell_folder_stem_is_its_name_without_the_rounds() -> None:
    from fedsweep.grid import cell_stem

    naming = {"strategy": "fedprox", "num_clients": 10, "seed": 0, "labels": ["mu1"]}
    assert cell_stem(**naming) == "fedprox-c10-s0-mu1"
    assert cell_stem(**naming, rounds=5) == "fedprox-c10-r5-s0-mu1"


def test_a_name_suffix_says_what_differs() -> None:
    from fedsweep.grid import differing_settings, name_suffix

    # Prepare
    base = {"rounds": 5, "lr": 0.1, "model": {"_target_": "fedsweep.models.logreg.LogisticRegression"}}
    mine = {**base, "model": {"_target_": "tiny.TinyNet", "width": 8}}
    mu = {**base, "strategy": {"mu": 0.1}}
    theirs_mu = {**base, "strategy": {"mu": 1.0}}
    many = {**base, "lr": 0.2, "rounds": 9, "seed": 3}
    # Execute / Assert
    assert differing_settings(mine, [base]) == ["model._target_", "model.width"]
    assert name_suffix(mine, differing_settings(mine, [base]), "0123456789abcdef") == "tinynet"
    assert name_suffix(mu, differing_settings(mu, [theirs_mu]), "0123456789abcdef") == "mu0.1"
    assert differing_settings(many, [base]) == ["lr", "seed"]  # rounds are not what a cell is
    assert name_suffix(many, differing_settings(many, [base]), "0123456789abcdef") == "k012345"
    assert differing_settings({**base, "rounds": 9}, [base]) == []


def test_flatten_uses_dotted_paths() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": {}, "f": 3}) == {"a.b": 1, "a.c.d": 2, "e": {}, "f": 3}


def test_nested_keys_are_read_after_the_grid_and_grid_scoped_when_their_group_varies() -> None:
    # Prepare
    from fedsweep.grid import deferred, reaches, scoped_overrides, varied_groups

    points = expand_grid({"strategy": ["fedavg", "fedprox"], "num_clients": [10, 50]}, [])
    line = [
        "strategy.mu=0.1",
        "+strategy.mu=0.1",
        "runner.retries=5",
        "rounds=3",
        "grid.strategy=[fedprox]",
    ]
    # Execute
    varied = varied_groups(points, ["strategy", "dataset"])
    # Assert
    assert [deferred(o) for o in line] == [True, True, True, False, False]
    assert deferred("grid.method.fedprox_mu.strategy.mu=1")
    assert varied == {"strategy": ["fedavg", "fedprox"]}
    assert scoped_overrides(line, varied) == ["strategy.mu=0.1", "+strategy.mu=0.1"]
    config = {"strategy": {"mu": 1.0}, "faults": {"faults": [{"p": 0.2}]}}
    assert reaches(config, "strategy.mu") and reaches(config, "faults.faults.0.p")
    assert not reaches(config, "strategy.nu") and not reaches(config, "faults.faults.1.p")
