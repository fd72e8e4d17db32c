"""Plug-ins bring their own rules (fedsweep/config/plugins.py); value types (config/validation.py)."""

import math
import typing
from pathlib import Path
from typing import Any

import pytest
from hydra import initialize_config_dir

from fedsweep.config import ConfigError, validate
from fedsweep.config.compose import compose_config
from fedsweep.config.plugins import check_params
from fedsweep.config.validation import describe

CONF = Path(__file__).resolve().parent.parent / "conf"


class EvenClients:
    """A plug-in with a rule across groups, stated by its `check_config` hook."""

    def __init__(self, *, factor: int = 2) -> None:
        if factor < 1:
            raise ValueError(f"selection.factor must be >= 1, got {factor}")
        self.factor = factor

    @classmethod
    def check_config(cls, config: dict[str, Any], *, key: str) -> None:
        factor = config[key].get("factor", 2)
        if factor >= 1 and config["num_clients"] % factor:
            raise ValueError(f"{key}.factor must divide num_clients ({config['num_clients']})")


@pytest.mark.parametrize(
    ("node", "num_clients", "expected"),
    [
        ({"factor": 3}, 10, "selection.factor must divide num_clients (10)"),
        ({"factor": 0}, 10, "selection.factor must be >= 1, got 0"),  # the constructor's own check
        ({"factor": "2"}, 10, "selection.factor must be an integer (got '2')"),
        ({"factr": 2}, 10, "unknown key selection.factr (did you mean factor?); EvenClients takes: factor"),
        ({"factor": 5}, 10, None),
    ],
)
def test_a_plugin_brings_its_own_rules(node: dict, num_clients: int, expected: str | None) -> None:
    # Prepare
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        config, choices = compose_config("config", [])
    config["num_clients"], config["clients_per_round"] = num_clients, 1
    config["selection"] = {"_target_": f"{__name__}.EvenClients", **node}
    # Execute / Assert
    if expected is None:
        validate(config, groups=choices)
        return
    with pytest.raises(ConfigError) as err:
        validate(config, groups=choices)
    assert expected in str(err.value)


def matches(value: Any, annotation: Any) -> bool:
    """Whether a plug-in parameter annotated `annotation` accepts `value` (the validator's own check)."""

    class Takes:
        def __init__(self, *, x: annotation) -> None:  # type: ignore[valid-type]
            pass

    try:
        check_params({"x": value}, Takes, key="plugin")
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize(
    ("value", "annotation", "ok"),
    [
        (True, int, False),
        (3, float, True),
        (2.5, int, False),
        (math.inf, float, False),
        (None, int | None, True),
        ([1, 2], tuple[int, ...], True),
        ([1, "a"], list[int], False),
        ({"_target_": "x.Y"}, EvenClients, True),
        ("a", typing.Literal["a", "b"], True),
        ("c", typing.Literal["a", "b"], False),
    ],
)
def test_type_rules(value: Any, annotation: Any, ok: bool) -> None:
    assert matches(value, annotation) is ok


def test_types_are_described_in_words() -> None:
    assert describe(int | list[int]) == "an integer or a list of integers"
    assert describe(float | None) == "a finite number or null"
