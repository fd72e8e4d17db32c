"""The config schema (fedsweep/config/): valid configs pass and round-trip, invalid ones name the key.

Configurations are drawn by hypothesis within the schema's ranges and composed from conf/ with
Hydra's compose API, exactly as the entry point composes a cell.
"""

import copy
import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import initialize_config_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedsweep.config import ConfigError, validate
from fedsweep.config.compose import compose_config
from fedsweep.rng import generator
from fedsweep.rounds.aggregate import aggregate
from fedsweep.rounds.blobs import start_round
from fedsweep.rounds.evaluate import combine_evaluations, evaluate_global
from fedsweep.rounds.work import client_task

_CELLS = itertools.count()  # hypothesis reuses the function's tmp_path: one cell folder per example

CONF = Path(__file__).resolve().parent.parent / "conf"
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_COMPOSED: dict[tuple[str, ...], tuple[dict[str, Any], dict[str, str]]] = {}


def composed(options: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """A fresh copy of the config composed with these group options (Hydra's compose costs ~0.1 s)."""
    key = tuple(options)
    if key not in _COMPOSED:
        _COMPOSED[key] = compose_config("config", options)
    config, choices = _COMPOSED[key]
    return copy.deepcopy(config), dict(choices)


@pytest.fixture(scope="module")
def hydra_conf() -> Iterator[None]:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield


def fmt(value: Any) -> str:
    """A value as a Hydra override value (repr keeps every float bit)."""
    return (
        str(value).lower()
        if isinstance(value, bool)
        else repr(value)
        if isinstance(value, float)
        else str(value)
    )


@st.composite
def valid_cell(draw: st.DrawFn, *, tiny: bool = False) -> tuple[list[str], dict[str, Any]]:
    """(group options, dotted key -> value) inside the schema's ranges (`tiny`: trains in ms)."""
    n = draw(st.integers(1, 4) if tiny else st.integers(1, 200))
    values: dict[str, Any] = {
        "seed": draw(st.integers(0, 1000) if tiny else st.integers(-(2**62), 2**62)),
        "rounds": draw(st.integers(1, 10_000)),
        "num_clients": n,
        "clients_per_round": draw(st.integers(1, n)),
        "local_epochs": draw(st.integers(1, 2) if tiny else st.integers(1, 50)),
        "batch_size": draw(st.integers(1, 4096)),
        "lr": draw(st.floats(1e-4, 0.1) if tiny else st.floats(5e-324, 1e6)),
        "momentum": draw(st.floats(0, 0.9) if tiny else st.floats(0, 1, exclude_max=True)),
        "weight_decay": draw(st.floats(0, 1)),
        "clip_norm": draw(st.floats(0, 100)),
        "checkpoint.keep": draw(st.integers(2, 50)),
        "runner.retries": draw(st.integers(0, 10)),
        "runner.task_timeout_s": draw(st.floats(0, 1e6)),
        "resume": draw(st.booleans()),
    }
    strategy = draw(st.sampled_from(["fedavg", "fedprox"]))
    partitions = ["natural", "iid", "dirichlet"] + ([] if tiny else ["shards"])
    partition = draw(st.sampled_from(partitions))
    dataset = (
        "synthetic" if tiny else draw(st.sampled_from(["synthetic", "mnist", "cifar10", "teacher_mnist"]))
    )
    models = ["logreg", "mlp"] + ([] if tiny else ["cnn", "cnn_small", "resnet18"])
    options = [
        f"strategy={strategy}",
        f"partition={partition}",
        f"dataset={dataset}",
        f"model={draw(st.sampled_from(models))}",
    ]
    if strategy == "fedprox":
        values["strategy.mu"] = draw(st.floats(0, 10))
    if partition == "dirichlet":
        values["partition.alpha"] = draw(st.floats(1e-3, 100))
    if partition == "shards":
        values["partition.labels_per_client"] = draw(st.integers(1, 10))
    if tiny:  # a few small devices of 5 features: one round trains in milliseconds
        values.update(
            {"dataset.num_features": 5, "dataset.max_samples_per_device": 12, "eval_batch_size": 64}
        )
    return options, values


def as_overrides(cell: tuple[list[str], dict[str, Any]]) -> list[str]:
    options, values = cell
    return [*options, *(f"{k}={fmt(v)}" for k, v in values.items())]


def put(config: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for parent in parents:
        config = config[parent]
    config[leaf] = value


@settings(SETTINGS, max_examples=25)
@given(cell=valid_cell())
def test_every_valid_configuration_passes_and_round_trips(hydra_conf: None, cell: tuple) -> None:
    # Prepare
    config, choices = compose_config("config", as_overrides(cell))
    # Execute
    settings_ = validate(config, groups=choices)
    # Assert
    assert settings_.to_container() == config
    assert settings_.knobs.clients_per_round <= settings_.knobs.num_clients


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cell=valid_cell(tiny=True))
def test_valid_tiny_configurations_run_one_round(hydra_conf: None, make_cell, cell: tuple) -> None:
    # Prepare
    config, choices = compose_config("config", as_overrides(cell))
    validate(config, groups=choices)
    cell = make_cell(config, where=f"cell-{next(_CELLS)}")
    selection = cell.methods.selector.select(
        round=1,
        available=torch.arange(cell.num_clients),
        k=config["clients_per_round"],
        generator=generator(config["seed"], "select", 1),
        state={},
        population=cell.fleet.population(1),
    )
    # Execute
    start = start_round(
        cell,
        round=1,
        params=cell.methods.initial_params,
        server_state=cell.methods.strategy.init_server_state(cell.methods.initial_params),
    )
    results = []
    for client in selection.clients:
        ref = None
        for epoch in range(config["local_epochs"]):
            ref = client_task(
                cell,
                round=1,
                client=client,
                epoch=epoch,
                epochs=config["local_epochs"],
                global_ref=start["global"],
                input_ref=ref,
                state_ref=None,
            )
        results.append(ref)
    aggregated = aggregate(
        cell,
        round=1,
        start=start,
        results=[r for r in results if r["valid"]],
        failures=[],
        selected=selection.clients,
        keep=False,
    )
    metrics = combine_evaluations([evaluate_global(cell, aggregated["global"])])
    # Assert
    assert len(results) == config["clients_per_round"]
    assert 0.0 <= metrics["accuracy"] <= 1.0


NEGATIVE = st.floats(max_value=-1e-9, allow_nan=False) | st.integers(max_value=-1)
NOT_POSITIVE = st.floats(max_value=0, allow_nan=False) | st.integers(max_value=0)
# key -> invalid values. Options it needs come first, e.g. partition.alpha needs partition=dirichlet.
INVALID: dict[str, tuple[list[str], st.SearchStrategy]] = {
    "rounds": ([], st.integers(max_value=0) | st.text(max_size=5) | st.floats(0.1, 9.9) | st.booleans()),
    "num_clients": ([], st.integers(max_value=0)),
    "local_epochs": ([], st.integers(max_value=0) | st.none()),
    "batch_size": ([], st.integers(max_value=0) | st.lists(st.integers(1, 9), max_size=2)),
    "lr": ([], NOT_POSITIVE | st.sampled_from([math.nan, math.inf, "fast"])),
    "momentum": ([], st.floats(min_value=1, allow_nan=False) | NEGATIVE),
    "weight_decay": ([], NEGATIVE),
    "clip_norm": ([], NEGATIVE | st.just(-math.inf)),
    "checkpoint.keep": ([], st.integers(max_value=1)),
    "checkpoint.write_retries": ([], st.integers(max_value=-1)),
    "runner.retries": ([], st.integers(max_value=-1) | st.just("3")),
    "runner.max_parallel_clients": ([], st.integers(max_value=-1)),
    "partition.alpha": (["partition=dirichlet"], NOT_POSITIVE),
    "strategy.mu": (["strategy=fedprox"], NEGATIVE | st.just("x")),
    "dataset.num_classes": ([], st.integers(max_value=1)),
    "foo": ([], st.integers()),
    "strategy.foo": ([], st.integers()),
    "runner.foo": ([], st.integers()),
}


@settings(SETTINGS, max_examples=60)
@given(cell=valid_cell(), key=st.sampled_from(sorted(INVALID)), data=st.data())
def test_every_invalid_configuration_is_refused_naming_the_key(
    hydra_conf: None, cell: tuple, key: str, data: st.DataObject
) -> None:
    # Prepare: a valid config (options composed, values set), then one key made invalid
    options, values = cell
    needs, bad_values = INVALID[key]
    bad, choices = composed([*options, "dataset=synthetic", *needs])
    for dotted, value in values.items():
        if dotted.split(".")[0] in bad and (dotted.split(".")[0] != "partition" or not needs):
            put(bad, dotted, value)
    put(bad, key, data.draw(bad_values))
    # Execute
    with pytest.raises(ConfigError) as err:
        validate(bad, groups=choices)
    # Assert
    message = str(err.value)
    assert "\n" not in message
    assert all(part in message for part in key.split(".")), message


@settings(SETTINGS, max_examples=30)
@given(cell=valid_cell(), extra=st.integers(1, 50))
def test_more_clients_per_round_than_clients_is_refused(hydra_conf: None, cell: tuple, extra: int) -> None:
    # Prepare
    options, values = cell
    config, choices = composed(options)
    for dotted, value in values.items():
        put(config, dotted, value)
    config["clients_per_round"] = config["num_clients"] + extra
    # Execute
    with pytest.raises(ConfigError, match=r"clients_per_round must be <= num_clients"):
        validate(config, groups=choices)


def test_missing_and_non_mapping_nodes_are_named(hydra_conf: None) -> None:
    # Prepare
    config, choices = compose_config("config", [])
    cases = {"rounds": "missing key rounds", "runner": "missing key runner", "grid": "grid must be a mapping"}
    for key, expected in cases.items():
        bad = copy.deepcopy(config)
        if key == "grid":
            bad["grid"] = [1, 2]
        else:
            del bad[key]
        # Execute / Assert
        with pytest.raises(ConfigError, match=expected):
            validate(bad, groups=choices)
