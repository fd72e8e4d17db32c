"""runner.batch_clients and runner.amp_dtype: what they accept, and a cell's identity (the presets'
cell keys are those they had before the keys existed; a batched cell is a cell of its own)."""

import pytest
from composing import compose_config

from fedsweep.config.errors import ConfigError
from fedsweep.config.schema import validate
from fedsweep.grid import legacy_key as cell_key  # the key cells had when rounds were part of it

# The presets' cells before batch_clients and amp_dtype existed (recorded on 2026-12-04).
KEYS = {
    ("quickstart", "strategy=fedavg", "num_clients=10"): "cbb01e7638afc889",
    ("quickstart", "strategy=fedavg", "num_clients=50"): "47bc08644bcbdb29",
    ("quickstart", "strategy=fedprox", "num_clients=10"): "27369351ff990f24",
    ("quickstart", "strategy=fedprox", "num_clients=50"): "65dc604935c79737",
    ("failures",): "d9774dac896d6dad",
    ("bench",): "9aec99ae02a3fdaf",
}


@pytest.mark.parametrize("cell", sorted(KEYS))
def test_existing_cells_keep_their_keys_and_batching_makes_new_ones(cell: tuple[str, ...]) -> None:
    preset, *rest = cell
    old = ["faults=none", "rounds=5", "local_epochs=1", "aggregation.stragglers=partial"]  # as it was
    args = [f"+experiment={preset}", *(old if preset == "quickstart" else []), *rest]
    assert cell_key(compose_config(args)) == KEYS[cell]
    assert cell_key(compose_config([*args, "runner.batch_clients=off"])) == KEYS[cell]
    assert cell_key(compose_config([*args, "runner.amp_dtype=auto"])) == KEYS[cell]
    batched = {cell_key(compose_config([*args, f"runner.batch_clients={n}"])) for n in ("auto", 4, 8)}
    assert len(batched) == 3 and KEYS[cell] not in batched


@pytest.mark.parametrize("value", ["0", "-2", "true", "many", "1.5"])
def test_batch_clients_refuses_what_it_cannot_mean(value: str) -> None:
    with pytest.raises(
        ConfigError, match=r"runner.batch_clients must be off, auto or a number of clients >= 1"
    ):
        validate(compose_config([f"runner.batch_clients={value}"]), plugins=False)


def test_a_bare_off_in_yaml_is_explained() -> None:
    config = compose_config([])
    config["runner"]["batch_clients"] = False  # what YAML makes of `batch_clients: off`
    with pytest.raises(ConfigError, match="quote it"):
        validate(config, plugins=False)


def test_amp_dtype_takes_auto_bfloat16_or_float16() -> None:
    for value in ("auto", "bfloat16", "float16"):
        assert (
            validate(compose_config([f"runner.amp_dtype={value}"]), plugins=False).runner.amp_dtype == value
        )
    with pytest.raises(ConfigError, match="runner.amp_dtype must be auto, bfloat16 or float16"):
        validate(compose_config(["runner.amp_dtype=fp8"]), plugins=False)
